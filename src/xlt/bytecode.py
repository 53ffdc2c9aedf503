"""Cached byte code for xlt's processes, even where Python was told not to write it.

Every job of the workflow is a new process that imports torch and transformers. Without
cached byte code, Python compiles their modules anew in each one: those imports took
14.2 s against 5.0 s with a cache (median of five paired runs, Intel Xeon, 2 cores), about
9 s of every model job. Turning byte code off (PYTHONDONTWRITEBYTECODE, `python -B`) mostly means "nothing
beside the sources" (a read-only install, a container layer kept small), so where it is
off, xlt's processes write it under the user's cache instead, as PYTHONPYCACHEPREFIX
would (`sys.pycache_prefix`): `$XLT_PYCACHE_DIR`, else `$XDG_CACHE_HOME/xlt/pycache`,
else `~/.cache/xlt/pycache`. A prefix the user set is kept; `XLT_PYCACHE_DIR=off` leaves
Python's setting as it is. Python writes each file atomically (a temporary file, then a
rename), so parallel jobs share the folder safely.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PYCACHE_ENV = "XLT_PYCACHE_DIR"
# Called by `python -m xlt` (xlt.__main__), the start of every job's command, and not by
# cli.main: tests call that in-process, where a process-wide setting does not belong.


def keep_bytecode() -> None:
    """Write byte code under the cache folder where this process was told not to write
    it beside the sources; call it before the heavy imports."""
    configured = os.environ.get(PYCACHE_ENV)
    if not sys.dont_write_bytecode or configured == "off":
        return
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "xlt" / "pycache"
    sys.pycache_prefix = sys.pycache_prefix or configured or str(default)
    sys.dont_write_bytecode = False
