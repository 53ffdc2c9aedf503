"""Every artifact is written under a temporary name and renamed: a writer killed
mid-write (SIGKILL, no clean-up) leaves the old file or none, never a torn one under
the real name, and the next write clears its leftovers. An audit of src/ finds no
writer that bypasses xlt.atomic."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from faultlib import REPO, files_under

from xlt.atomic import atomic_path, write_parquet
from xlt.errors import XltError

KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {src!r})
    import pandas as pd
    from xlt.atomic import {writer}

    def write_half_then_die(self, path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"PAR1 half of a parquet file")
            handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    pd.DataFrame.{method} = write_half_then_die
    {writer}(pd.DataFrame({{"x": [1, 2, 3]}}), {target!r})
    """
)


@pytest.mark.parametrize(
    "writer, method, name", [("write_parquet", "to_parquet", "table.parquet"), ("write_csv", "to_csv", "table.csv")]
)
@pytest.mark.parametrize("had_old_file", [False, True])
def test_a_writer_killed_mid_write_leaves_the_old_file_or_none(tmp_path, writer, method, name, had_old_file):
    target = tmp_path / "results" / name
    if had_old_file:
        target.parent.mkdir(parents=True)
        target.write_bytes(b"old, whole")
    script = KILLED_WRITER.format(src=str(REPO / "src"), writer=writer, method=method, target=str(target))

    killed = subprocess.run([sys.executable, "-c", script], capture_output=True)

    assert killed.returncode == -9
    leftovers = [path for path in files_under(target.parent) if path != target]
    assert [path.name.startswith(f".{name}.") and path.name.endswith(".tmp") for path in leftovers] == [True]
    if had_old_file:
        assert target.read_bytes() == b"old, whole"
    else:
        assert not target.exists()

    write_parquet(pd.DataFrame({"x": [1]}), target)
    assert files_under(target.parent) == [target]


def test_a_failed_directory_write_leaves_nothing(tmp_path):
    target = tmp_path / "adapter"
    with pytest.raises(RuntimeError), atomic_path(target, is_dir=True) as tmp:
        (tmp / "adapter_model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_a_directory_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "base"
    target.mkdir()
    (target / "old.json").write_text("{}")
    stale = tmp_path / ".base.abc123.tmp"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"left by a killed conversion")
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "new.json").write_text("{}")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["base"]
    assert [path.name for path in target.iterdir()] == ["new.json"]


# Writes that do not go through xlt.atomic, each with the reason it is safe.
NOT_ARTIFACTS = {
    ("stages.py", 'open(path, "w", buffering=1'): "a job's log, not an artifact",
    (
        "inference/shards.py",
        'open(self.path, "a"',
    ): "appends whole fsync'ed lines; a torn last line is ignored on reading",
    ("models.py", "model.save_pretrained(out_dir"): "convert_gguf writes into prepare_model's temporary folder",
    ("models.py", "tokenizer.save_pretrained(out_dir"): "convert_gguf writes into prepare_model's temporary folder",
    ("cli.py", 'rescored.to_json(orient="records"'): "renders a string in memory; _write_lines writes it atomically",
    ("jobs.py", "model).to_json()"): "renders a job's settings as the string its rule passes",
    ("fp8.py", "(partial / "): "written into the .partial folder, renamed whole onto the converted checkpoint",
    ("fp8.py", "marker.write_text("): "the .partial folder's origin, read back as untrusted where torn",
    (
        "staging.py",
        "(partial / STAGED_RECORD)",
    ): "written into the .partial folder, renamed whole onto the staged folder",
}
WRITE_CALL = re.compile(
    r"""\.(to_parquet|to_csv|to_json|savefig|save_pretrained|write_text|write_bytes)\(|open\([^)]*["'][wax]b?["']"""
)


def test_every_writer_in_src_goes_through_a_temporary_name():
    unsafe = []
    for path in sorted((REPO / "src" / "xlt").rglob("*.py")):
        name = str(path.relative_to(REPO / "src" / "xlt"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not WRITE_CALL.search(line) or name == "atomic.py":
                continue
            if "tmp" in line or any(file == name and snippet in line for file, snippet in NOT_ARTIFACTS):
                continue
            unsafe.append(f"{name}:{number}: {line.strip()}")
    assert unsafe == []


def test_the_audit_finds_a_direct_write():
    assert WRITE_CALL.search("    frame.to_parquet(output, index=False)")
    assert WRITE_CALL.search('    with open(report, "w") as handle:')
    assert not WRITE_CALL.search('    with open(path, encoding="utf-8") as handle:')


def _write(target, is_dir=False):
    with atomic_path(target, is_dir=is_dir) as tmp:
        tmp.mkdir(exist_ok=True) if is_dir else tmp.write_text("new")


def test_a_symlink_is_not_replaced(tmp_path):
    pointed = tmp_path / "elsewhere.txt"
    pointed.write_text("theirs")
    link = tmp_path / "out.jsonl"
    link.symlink_to(pointed)
    with pytest.raises(XltError) as error:
        _write(link)
    assert (
        str(error.value)
        == f"{link}: is a symbolic link, not a regular file; xlt replaces only regular files: remove it or "
        "write elsewhere"
    )
    assert link.is_symlink() and pointed.read_text() == "theirs"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["elsewhere.txt", "out.jsonl"]


def test_a_device_or_fifo_is_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(XltError, match="is a device or other special file, not a regular file"):
        _write(fifo)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    if os.geteuid() == 0:  # as root the rename would replace the null device itself
        before = os.stat("/dev/null")
        with pytest.raises(XltError, match="^/dev/null: is a device or other special file"):
            _write("/dev/null")
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and os.stat("/dev/null").st_ino == before.st_ino


def test_a_folder_is_not_replaced_by_a_file_nor_a_file_by_a_folder(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "keep").write_text("kept")
    (tmp_path / "file").write_text("kept")
    with pytest.raises(XltError, match="folder: is a folder, not a regular file"):
        _write(tmp_path / "folder")
    with pytest.raises(XltError, match="file: is a regular file, not a folder"):
        _write(tmp_path / "file", is_dir=True)
    assert (tmp_path / "folder" / "keep").read_text() == "kept" and (tmp_path / "file").read_text() == "kept"


def test_a_path_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("kept")
    with pytest.raises(XltError) as error:
        _write(tmp_path / "file" / "effects.csv")
    assert str(error.value).startswith(f"{tmp_path}/file/effects.csv: cannot make its folder {tmp_path}/file (")
