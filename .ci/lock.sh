#!/usr/bin/env bash
# Rewrite constraints.txt from an environment the tests passed in: every package that
# `pip install -e '.[test]'` put there, at its installed version (pip freeze, xlt itself
# left out), so that the README's install gets exactly the stack that was tested.
#
#   .ci/lock.sh [PYTHON]     # default .venv/bin/python; run after the tests pass
#
# torch is pinned without its local version label: the CPU build installed here is
# 2.13.0+cpu, which PyPI does not carry; "torch==2.13.0" installs that CPU build where a
# wheel cache or index offers it (pip prefers the local "+cpu" version) and PyPI's
# 2.13.0 elsewhere. The transformers pin must lie in the range the inference engine
# accepts (xlt.inference.engine.TESTED_TRANSFORMERS; tests/test_lock.py checks both).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-.venv/bin/python}

{
    echo "# The tested stack: every package of pip install -e '.[test]' at the version the tests"
    echo "# passed with, written by .ci/lock.sh from that environment (pip freeze). Install with"
    echo "#   pip install -c constraints.txt -e '.[test]'"
    echo "# torch==X is the CPU build where an index offers it (the local \"+cpu\" version is"
    echo "# preferred) and PyPI's build elsewhere; its label is dropped here, as PyPI has none."
    echo "# Python $("$python" -c 'import sys; print(".".join(map(str, sys.version_info[:2])))')."
    # --all: setuptools too, which packages of the install require; pip itself, the
    # installer rather than part of the stack, stays whatever the machine's venv has.
    "$python" -m pip freeze --all --exclude-editable | grep -v '^pip==' |
        sed -E 's/^([A-Za-z0-9_.-]+==[^+]+)\+[A-Za-z0-9.]+$/\1/' | LC_ALL=C sort -f
} >constraints.txt.tmp
mv constraints.txt.tmp constraints.txt
