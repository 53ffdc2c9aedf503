"""Helpers of the fault tests: the tiny test config made runnable from any folder, the
real `snakemake` command line, and the check that a failure left nothing behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def tiny_config(model_paths: dict[str, Path]) -> dict:
    """.test/config/config.yaml with its relative paths made absolute, so a run in any
    working directory reads the repository's fixture and templates."""
    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text(encoding="utf-8"))
    config["data"]["fixture_dir"] = str(REPO / config["data"]["fixture_dir"])
    config["prompts"]["templates"] = str(REPO / config["prompts"]["templates"])
    for name, entry in config["models"].items():
        entry["path"] = str(model_paths[name])
    return config


def write_config(config: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def snakemake_command(workdir: Path, configfile: Path, *args: str) -> list[str]:
    """The command line a user types, with this checkout's Snakefile (`--configfile`
    last: it takes every argument up to the next option)."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
        "--configfile",
        str(configfile),
    ]


def run_snakemake(workdir: Path, configfile: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_command(workdir, configfile, *args), capture_output=True, text=True, timeout=timeout)


def files_under(folder: Path) -> list[Path]:
    """Every file under `folder`, hidden ones (temporaries, partial shards) included."""
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []
