"""A crash loses nothing. The real workflow on the tiny models is killed with SIGKILL
(the whole process group: Snakemake and its jobs, as a cluster or a power cut would)
at a seeded random moment while one stage's job runs, then rerun the way a user would
(`snakemake --unlock`, then `--rerun-incomplete`). Every artifact is then identical to
that of an uninterrupted run: no file torn, no item lost or counted twice. A killed
predict job continues from its shards instead of starting over."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from faultlib import files_under
from snakemake_runs import cli_command, run_cli, tiny_config, write_config

from xlt import paths

pytestmark = pytest.mark.slow

MODEL = "tiny-dense"
SHARD = f"results/predictions/{MODEL}/base/cot/.predict.jsonl"
BATCHES_READ_BACK = re.compile(r"\((\d+) of (\d+) waves read back from an earlier run\)")


def fault_config(tiny_models) -> dict:
    """The test config with one model, made slow enough to be killed mid-job: one item
    per inference batch, a longer chain-of-thought budget, and a checkpoint every four
    of 32 training steps."""
    config = tiny_config(tiny_models)
    config["models"] = {MODEL: config["models"][MODEL]}
    config["models"][MODEL]["inference"] = {"batch_size": 1}
    config["models"][MODEL]["finetune"].update(micro_batch_size=1, save_steps=4, epochs=2)
    config["data"]["max_train_items"] = 16
    config["prompts"]["cot_max_new_tokens"] = 64
    return config


def incomplete_outputs(workdir: Path) -> set[str]:
    """Outputs of jobs Snakemake has started and not yet recorded as finished (its
    .snakemake/incomplete markers: the output path, base64-encoded, split into
    folders when long)."""
    root = workdir / ".snakemake" / "incomplete"
    found = set()
    for marker in files_under(root):
        encoded = "".join(part.lstrip("@") for part in marker.relative_to(root).parts)
        try:
            found.add(base64.urlsafe_b64decode(encoded).decode())
        except ValueError:
            continue  # Snakemake's own bookkeeping files
    return found


def shard_waves(workdir: Path) -> int:
    """Whole wave lines in the CoT shard of the watched predict job."""
    path = workdir / SHARD
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8").split("\n")[1:-1]  # header; a torn last line has no newline yet
    return sum(1 for line in lines if line.startswith('{"wave"'))


def complete_checkpoint(workdir: Path) -> bool:
    """A training checkpoint is on disk (the Trainer writes trainer_state.json last)."""
    return any((workdir / "results" / "checkpoints" / f"{MODEL}-arb_Arab").glob("checkpoint-*/trainer_state.json"))


@dataclass(frozen=True)
class Stage:
    """Where to kill one stage: once the job writing `output` is under way and `ready`
    holds, after a seeded random delay of up to `max_delay` seconds, which stays well
    below the rest of the job's run time even on a fast machine."""

    output: str
    ready: Callable[[Path], bool]
    max_delay: float
    not_yet_made: tuple[str, ...]  # results of this stage and the ones after it


LATER = ("results/scores", "results/stats", "results/report")
STAGES = {
    "prepare_model": Stage(
        f"results/models/{MODEL}/base", lambda workdir: True, 0.5, ("results/models", "results/predictions", *LATER)
    ),
    "finetune": Stage(
        f"results/models/{MODEL}/adapter-arb_Arab",
        complete_checkpoint,
        0.5,
        (f"results/models/{MODEL}/adapter-arb_Arab", f"results/predictions/{MODEL}/ft-arb_Arab", *LATER),
    ),
    "predict": Stage(
        f"results/predictions/{MODEL}/base/cot/arb_Arab.parquet",
        lambda workdir: shard_waves(workdir) >= 1,
        0.3,
        ("results/predictions", *LATER),
    ),
    "score": Stage("results/scores/accuracy.csv", lambda workdir: True, 0.5, LATER),
    "compare": Stage("results/stats/effects.csv", lambda workdir: True, 0.5, LATER[1:]),
}


def interrupted_study(reference: Path, workdir: Path, stage: Stage) -> None:
    """A study whose earlier stages are done, as if a run had got as far as `stage`."""
    shutil.copytree(reference, workdir, ignore=shutil.ignore_patterns("logs"))
    for folder in stage.not_yet_made:
        shutil.rmtree(workdir / folder)


def kill_during(stage: Stage, workdir: Path, configfile: Path, seed: int) -> dict:
    """Run the workflow and SIGKILL its process group at a seeded random moment after
    the watched job is under way."""
    rng = random.Random(seed)
    command = cli_command(workdir, configfile, "--cores", "2")
    with open(workdir / "killed-run.txt", "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not stage.ready(workdir) or stage.output not in incomplete_outputs(workdir):
            assert process.poll() is None, (
                f"snakemake ended before {stage.output} was under way: "
                f"{(workdir / 'killed-run.txt').read_text()[-3000:]}"
            )
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(rng.uniform(0, stage.max_delay))
        state = {"shard_waves": shard_waves(workdir)}
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert stage.output in incomplete_outputs(workdir), (
        f"the job writing {stage.output} finished before the kill: make it slower"
    )
    return state


def resume(workdir: Path, configfile: Path) -> None:
    unlock = run_cli(workdir, configfile, "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    rerun = run_cli(workdir, configfile, "--cores", "2", "--rerun-incomplete")
    assert rerun.returncode == 0, rerun.stderr[-4000:]


def artifacts(workdir: Path) -> dict[str, object]:
    """Every file under results/, as bytes, except three that hold a run's incidentals:
    the training log's wall-clock column, peft's adapter config, which lists its
    target modules in set order, and the predict shards' header, whose fingerprint
    holds the model files' modification times (their waves must be the same)."""
    found = {}
    for path in files_under(workdir / "results"):
        name = str(path.relative_to(workdir))
        if path.name == ".predict.jsonl":
            found[name] = path.read_text(encoding="utf-8").split("\n", 1)[1]
        elif path.name == "train_log.csv":
            found[name] = pd.read_csv(path).drop(columns="elapsed_s").to_csv(index=False)
        elif path.name == "adapter_config.json":
            config = json.loads(path.read_text())
            found[name] = {**config, "target_modules": sorted(config["target_modules"])}
        else:
            found[name] = path.read_bytes()
    return found


def assert_same_results(workdir: Path, reference: Path) -> None:
    got, expected = artifacts(workdir), artifacts(reference)
    assert sorted(got) == sorted(expected), "files differ (a leftover temporary or shard, or a missing artifact)"
    differing = [name for name in expected if got[name] != expected[name]]
    assert differing == []
    data = pd.read_parquet(workdir / "results" / "data" / "arb_Arab.parquet")
    test_items = sorted(data.loc[data["split"] == "test", "item_id"])
    for path in (workdir / "results" / "predictions").rglob("*.parquet"):
        assert sorted(pd.read_parquet(path)["item_id"]) == test_items, path


@pytest.fixture(scope="module")
def study(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("kill-and-resume")
    configfile = write_config(fault_config(tiny_models), root / "config.yaml")
    reference = root / "reference"
    reference.mkdir()
    result = run_cli(reference, configfile, "--cores", "2")
    assert result.returncode == 0, result.stderr[-4000:]
    return root, configfile, reference


def test_two_uninterrupted_runs_are_byte_identical(study):
    root, configfile, reference = study
    again = root / "again"
    again.mkdir()
    result = run_cli(again, configfile, "--cores", "2")
    assert result.returncode == 0, result.stderr[-4000:]
    predictions = sorted(
        str(path.relative_to(again)) for path in (again / "results" / "predictions").rglob("*.parquet")
    )
    assert len(predictions) == 2 * len(paths.PROMPTS) * 3  # variants x cells (direct, cot, choice, cloze) x languages
    for name in predictions:
        assert (again / name).read_bytes() == (reference / name).read_bytes(), name
    assert_same_results(again, reference)


@pytest.mark.parametrize("stage", STAGES)
def test_a_killed_stage_reruns_to_the_same_results(study, stage):
    root, configfile, reference = study
    workdir = root / f"killed-{stage}"
    interrupted_study(reference, workdir, STAGES[stage])

    state = kill_during(STAGES[stage], workdir, configfile, seed=sorted(STAGES).index(stage))
    resume(workdir, configfile)

    assert_same_results(workdir, reference)
    if stage == "predict":
        resumed = BATCHES_READ_BACK.search((workdir / "logs" / "predict" / MODEL / "base.log").read_text())
        assert resumed is not None
        read_back, planned = map(int, resumed.groups())
        assert 1 <= state["shard_waves"] <= read_back <= planned
    if stage == "finetune":
        assert (
            "resuming from results/checkpoints/tiny-dense-arb_Arab/checkpoint-"
            in (workdir / "logs" / "finetune" / f"{MODEL}-arb_Arab.log").read_text()
        )
