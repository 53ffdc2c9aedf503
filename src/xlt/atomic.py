"""Writing artifacts so that a kill at any moment leaves the old file or the new one,
never a half-written file that a later run would trust."""

from __future__ import annotations

import glob
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import XltError


def _default_mode(is_dir: bool) -> int:
    """What a plain open() or mkdir() would give under the current umask (mkstemp and
    mkdtemp make private files, which other users of a shared results tree cannot read)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if is_dir else 0o666) & ~umask


def _check_target(target: Path, is_dir: bool) -> None:
    """Only a regular file (a real folder for `is_dir`) is replaced: the rename would
    otherwise put a file where a device, a symlink or a folder was (as root, onto
    /dev/null). Its parent is made, or the line says why it cannot be."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise XltError(
            f"{target}: cannot make its folder {target.parent} ({error.strerror}); give a path in a folder"
        ) from None
    try:
        mode = target.lstat().st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise XltError(f"{target}: cannot be written ({error.strerror})") from None
    wanted, what, whats = (
        (stat.S_ISDIR, "a folder", "folders") if is_dir else (stat.S_ISREG, "a regular file", "regular files")
    )
    if not wanted(mode):
        kinds = {stat.S_ISLNK: "a symbolic link", stat.S_ISDIR: "a folder", stat.S_ISREG: "a regular file"}
        found = next((kind for test, kind in kinds.items() if test(mode)), "a device or other special file")
        raise XltError(f"{target}: is {found}, not {what}; xlt replaces only {whats}: remove it or write elsewhere")


def _remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)


@contextmanager
def atomic_path(target: str | Path, is_dir: bool = False):
    """Yield a temporary path beside `target`; rename it onto `target` on success,
    delete it on failure. Beside, so the rename stays on one file system.

    Temporaries of `target` left by a killed writer are removed first: one job writes
    a target at a time, and a converted model's leftovers are gigabytes."""
    target = Path(target)
    _check_target(target, is_dir)
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        _remove(stale)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    os.chmod(tmp, _default_mode(is_dir))
    try:
        yield tmp
        if is_dir:
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        else:
            # On disk before the rename, so a crashed node shows the old file or the
            # whole new one, not an empty one under the new name.
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            _remove(tmp)


def write_parquet(frame, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)


def write_csv(frame, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False)


def write_text(text: str, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
