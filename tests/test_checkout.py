"""The test suite passes whatever the checkout holds (issue 24): the README runs the
study in the checkout and then the tests there, so no test may plan or write in the
user's tree. Shown by running every planning test (marker `plans`) in a copy of this
checkout that holds a finished default study, a lock and a half-written shard, and
checking that they pass and leave the copy as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from snakemake_runs import REPO, run_cli, run_snakemake

# What a checkout holds that is not the project's: environments, caches, results.
NOT_THE_PROJECT = {
    ".git",
    ".venv",
    ".snakemake",
    "results",
    "logs",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".test/models",
}


def checkout_files() -> list[Path]:
    """The checkout's files as a clone with its working changes has them (git's view
    where it is a git checkout)."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"], capture_output=True, text=True
    )
    if listed.returncode == 0:
        names = [Path(name) for name in listed.stdout.split("\0") if name]
    else:
        names = [path.relative_to(REPO) for path in REPO.rglob("*") if path.is_file()]
    return [
        name
        for name in names
        if (REPO / name).is_file()
        and not any(part in NOT_THE_PROJECT or part.endswith(".egg-info") for part in name.parts)
        and not str(name).startswith(".test/models")
    ]


def finish_the_default_study(checkout: Path) -> None:
    """Every output of the default study's plan made and marked up to date, as a
    finished run leaves them (`snakemake --touch`): a second `snakemake -n` plans
    nothing."""
    configfile = checkout / "config" / "config.yaml"
    for output in run_snakemake(checkout, checkout, configfile, dryrun=True):
        path = checkout / output
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
        else:
            path.mkdir(parents=True, exist_ok=True)
    touched = run_cli(checkout, configfile, "--touch", "--cores", "1", snakefile=checkout / "Snakefile")
    assert touched.returncode == 0, touched.stderr[-3000:]
    assert run_snakemake(checkout, checkout, configfile, dryrun=True) == []


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


@pytest.mark.slow  # over 25 s: keeps the default suite under 15 minutes in a fresh clone
def test_planning_tests_pass_in_a_checkout_holding_a_finished_study(tmp_path):
    """The README's two commands in their order: the study, then the tests. On 407058f
    test_trainsets planned `snakemake -n` in the checkout itself, found everything done
    and failed (0 == 4)."""
    checkout = tmp_path / "checkout"
    for name in checkout_files():
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_bytes((REPO / name).read_bytes())
    finish_the_default_study(checkout)
    # A run killed half-way leaves a lock and a shard behind.
    (checkout / ".snakemake" / "locks").mkdir(parents=True, exist_ok=True)
    (checkout / ".snakemake" / "locks" / "0.input.lock").write_text(str(checkout / "config" / "config.yaml"))
    (checkout / "results" / "predictions" / "smollm2-135m" / "base" / "cot" / ".predict.jsonl").write_text(
        '{"format": 2, "fingerprint": "x"}\n{"wave": 0, "res'
    )
    before = snapshot(checkout)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-m",
        "plans",
        "-p",
        "no:cacheprovider",
        "-c",
        str(checkout / "pyproject.toml"),
        "--rootdir",
        str(checkout),
    ]
    command += ["--basetemp", str(tmp_path / "basetemp"), str(checkout / "tests")]
    done = subprocess.run(
        command,
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=1500,
    )
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    assert snapshot(checkout) == before, "a planning test wrote in the checkout"
