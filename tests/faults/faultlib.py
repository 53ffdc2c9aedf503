"""Helpers of the fault tests: the check that a failure left nothing behind. Running
Snakemake is tests/snakemake_runs.py's."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def files_under(folder: Path) -> list[Path]:
    """Every file under `folder`, hidden ones (temporaries, partial shards) included."""
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []
