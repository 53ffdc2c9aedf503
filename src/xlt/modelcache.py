"""Converted GGUF checkpoints kept across runs and checkouts.

Converting a GGUF file to safetensors takes most of a minute for SmolLM2 and two for
Gemma-3-270M on two cores, and gives the same bytes every time for the same file, code
and library versions. So prepare_model keeps each conversion in a cache folder
(`$XLT_CACHE_DIR`, else `$XDG_CACHE_HOME/xlt/converted`, else `~/.cache/xlt/converted`;
`XLT_CACHE_DIR=off` turns it off) keyed by the GGUF file's sha256, the prepare_model
stage's code fingerprint and the versions of torch, transformers and gguf, and copies
it from there on the next run. Every cached file's sha256 is recorded when it is
stored and checked when it is copied out: a damaged entry is a miss, never a model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .atomic import atomic_path
from .errors import XltError
from .hashes import file_sha256

logger = logging.getLogger(__name__)

CACHE_ENV = "XLT_CACHE_DIR"
RECORD = "xlt_cache.json"
# What the conversion's output depends on besides the GGUF file and xlt's code.
LIBRARIES = ("torch", "transformers", "gguf")


def cache_root() -> Path | None:
    """The cache folder, or None where the user turned it off."""
    configured = os.environ.get(CACHE_ENV)
    if configured == "off":
        return None
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "xlt" / "converted"


def _library_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def conversion_key(gguf_sha256: str) -> str:
    from .fingerprint import stage_fingerprint

    parts = [
        gguf_sha256,
        stage_fingerprint("prepare_model"),
        *(f"{name}={_library_version(name)}" for name in LIBRARIES),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def restore(key: str, into: Path) -> bool:
    """Copy the cached conversion `key` into the folder `into`; False (nothing copied
    that stays) when there is none or it fails its recorded hashes."""
    root = cache_root()
    entry = root / key if root else None
    if entry is None or not (entry / RECORD).is_file():
        return False
    try:
        files = json.loads((entry / RECORD).read_text(encoding="utf-8"))["files"]
        for name, digest in files.items():
            shutil.copyfile(entry / name, into / name)
            if file_sha256(into / name) != digest:
                raise ValueError(f"{entry / name} does not match its recorded sha256")
    except (OSError, ValueError, KeyError) as error:
        for name in os.listdir(into):
            if (into / name).is_file():
                (into / name).unlink()
        logger.info(f"model cache: {entry} is unusable ({error}); converting again")
        return False
    logger.info(f"model cache: the conversion from {entry}")
    return True


def store(key: str, folder: Path) -> None:
    """Keep the files of the converted checkpoint `folder` under `key`. A cache that
    cannot be written (read-only home, full disk) costs the next run a conversion,
    never this job."""
    root = cache_root()
    if root is None:
        return
    try:
        with atomic_path(root / key, is_dir=True) as tmp:
            files = {}
            for path in sorted(folder.iterdir()):
                if path.is_file():
                    shutil.copyfile(path, tmp / path.name)
                    files[path.name] = file_sha256(tmp / path.name)
            (tmp / RECORD).write_text(json.dumps({"files": files}, indent=2) + "\n", encoding="utf-8")
    except (OSError, XltError) as error:
        logger.info(f"model cache: not kept in {root / key} ({error})")
        return
    logger.info(f"model cache: kept in {root / key}")
