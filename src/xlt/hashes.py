"""sha256 of a file or a folder of files: what provenance.json records for a local or
embedded model or data set (prepare_model keeps the hash of what it converted)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_sha256(folder: Path) -> str:
    """sha256 over a checkpoint folder's files (relative name and content hash, sorted)."""
    listing = "".join(
        f"{path.relative_to(folder)}\t{file_sha256(path)}\n" for path in sorted(folder.rglob("*")) if path.is_file()
    )
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()
