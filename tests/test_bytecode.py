"""Byte code under the cache folder where Python was told not to write it (xlt.bytecode):
each job process would otherwise compile torch and transformers anew."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def python_b(*args: str, **env: str) -> str:
    """`python -B ARGS` (byte code off) with xlt's src on the path; what it printed."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPYCACHEPREFIX"}
    environment.update(PYTHONPATH=str(REPO / "src"), **env)
    done = subprocess.run([sys.executable, "-B", *args], capture_output=True, text=True, env=environment, check=True)
    return done.stdout


IMPORT_AFTER = "from xlt.bytecode import keep_bytecode; keep_bytecode(); import xlt.stattests"


def test_byte_code_goes_to_the_cache_folder_when_it_is_off(tmp_path):
    python_b("-c", IMPORT_AFTER, XLT_PYCACHE_DIR=str(tmp_path))
    written = [path.name for path in tmp_path.rglob("*.pyc")]
    assert any(name.startswith("stattests.") for name in written), written


def test_off_leaves_pythons_setting(tmp_path):
    python_b("-c", IMPORT_AFTER, XLT_PYCACHE_DIR="off", XDG_CACHE_HOME=str(tmp_path), HOME=str(tmp_path))
    assert not list(tmp_path.rglob("*.pyc"))


def test_a_prefix_the_user_set_is_kept(tmp_path):
    mine = tmp_path / "mine"
    printed = python_b(
        "-c",
        f"import sys; sys.pycache_prefix = {str(mine)!r}; {IMPORT_AFTER}; print(sys.pycache_prefix)",
        XLT_PYCACHE_DIR=str(tmp_path / "xlt"),
    )
    assert printed.strip() == str(mine)
    assert list(mine.rglob("stattests.*.pyc")) and not (tmp_path / "xlt").exists()


def test_every_jobs_command_turns_it_on_before_the_cli_imports(tmp_path):
    """`python -m xlt` starts every job's command: the CLI's own modules already land in the cache."""
    python_b("-m", "xlt", "--help", XLT_PYCACHE_DIR=str(tmp_path))
    assert list(tmp_path.rglob("cli.*.pyc")), sorted(path.name for path in tmp_path.rglob("*.pyc"))
