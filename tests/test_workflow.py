"""The real Snakemake DAG, through its API, on the test config (tiny models, three
languages, a few items) in a temporary folder: every artifact of the contract with its
columns, then a second run that schedules nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from xlt.paths import ACCURACY_COLUMNS, ALIGNMENT_COLUMNS, EFFECTS_COLUMNS, PREDICTION_COLUMNS

VARIANTS, PROMPTS = ("base", "ft"), ("direct", "cot")


def run_snakemake(repo: Path, workdir: Path, configfile: Path, cores: int = 2, dryrun: bool = False) -> list[str]:
    """Run (or plan) the workflow; returns the outputs of the jobs it scheduled."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, ExecutionSettings, OutputSettings, ResourceSettings

    scheduled: list[str] = []
    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=cores),
            config_settings=ConfigSettings(configfiles=[configfile]),
            snakefile=repo / "Snakefile",
            workdir=workdir,
        )
        dag = workflow.dag(dag_settings=DAGSettings())
        dag.execute_workflow(executor="dryrun" if dryrun else "local", execution_settings=ExecutionSettings(), updated_files=scheduled)
    return scheduled


def write_test_config(repo: Path, workdir: Path, tiny_models: dict[str, Path]) -> Path:
    """The repo's .test config with its relative paths made absolute for `workdir`."""
    config = yaml.safe_load((repo / ".test" / "config" / "config.yaml").read_text())
    config["data"]["fixture_dir"] = str(repo / config["data"]["fixture_dir"])
    config["prompts"]["templates"] = str(repo / config["prompts"]["templates"])
    for name, entry in config["models"].items():
        entry["path"] = str(tiny_models[name])
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_whole_study_runs_and_a_second_run_does_nothing(repo, tiny_models, tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    configfile = write_test_config(repo, workdir, tiny_models)
    config = yaml.safe_load(configfile.read_text())
    langs, models = list(config["languages"]), list(config["models"])

    run_snakemake(repo, workdir, configfile)

    results = workdir / "results"
    for lang in langs:
        data = pd.read_parquet(results / "data" / f"{lang}.parquet")
        assert {"link", "question_number", "flores_passage", "correct_answer_num", "split"} <= set(data.columns)
    for model in models:
        assert (results / "models" / model / "base" / "xlt_model.json").is_file()
        assert (results / "models" / model / "adapter" / "adapter_model.safetensors").is_file()
        assert "loss" in pd.read_csv(results / "models" / model / "adapter" / "train_log.csv").columns
        for variant in VARIANTS:
            for prompt in PROMPTS:
                for lang in langs:
                    frame = pd.read_parquet(results / "predictions" / model / variant / prompt / f"{lang}.parquet")
                    assert list(frame.columns) == list(PREDICTION_COLUMNS)
                    assert len(frame) == config["data"]["max_test_items"]
                    assert (frame["lang"] == lang).all() and (frame["variant"] == variant).all()
    accuracy = pd.read_csv(results / "scores" / "accuracy.csv")
    assert list(accuracy.columns) == list(ACCURACY_COLUMNS)
    assert len(accuracy) == len(models) * 4 * len(langs)
    effects = pd.read_csv(results / "stats" / "effects.csv")
    assert list(effects.columns) == list(EFFECTS_COLUMNS)
    assert {"relatedness", "cot_relatedness", "ft_gain_related", "ft_gain_control"} <= set(effects["effect"])
    # An estimate is missing only where notes.csv gives the reason (the tiny models'
    # answers rarely change, so the logistic model and the power calculation lack data).
    notes = pd.read_csv(results / "stats" / "notes.csv", keep_default_na=False).query("table == 'effects'")
    missing = effects[effects["estimate"].isna()].merge(notes, on=["model", "prompt", "effect"])
    assert (missing["note"] != "").all() and len(missing) == effects["estimate"].isna().sum()
    assert list(pd.read_csv(results / "stats" / "alignment.csv").columns) == list(ALIGNMENT_COLUMNS)
    report = results / "report"
    assert "## Verdicts" in (report / "summary.md").read_text()
    for png in ("accuracy.png", "parse_rate.png", "gains_by_group.png", "ft_vs_cot_gain.png"):
        assert (report / png).read_bytes()[:4] == b"\x89PNG"
    assert (workdir / "logs" / "predict" / models[0] / "ft" / "cot.log").is_file()

    assert run_snakemake(repo, workdir, configfile, dryrun=True) == []
