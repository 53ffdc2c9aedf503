"""The real Snakemake DAG, through its API, on the test config (tiny models, three
languages, a few items) in a temporary folder: every artifact of the contract with its
columns, then a second run that schedules nothing."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import yaml
from snakemake_runs import (
    planned_jobs,
    rule_graph,
    rule_graph_of_svg,
    run_snakemake,
    shipped_study,
    snakemake_command,
    tiny_config,
    write_config,
)

from xlt.paths import (
    ACCURACY_COLUMNS,
    ALIGNMENT_COLUMNS,
    COT_COLUMNS,
    EFFECTS_COLUMNS,
    PREDICTION_COLUMNS,
    REPORT_PLOTS,
    REPORT_TABLES,
    ROTATION_COLUMNS,
    SOURCE_COLUMN,
)
from xlt.primary import INTERACTION

# The test config's one source is arb_Arab: its fine-tuned variant names it, as with several.
VARIANTS, PROMPTS = ("base", "ft-arb_Arab"), ("direct", "cot", "choice", "cloze")


def test_whole_study_runs_and_a_second_run_does_nothing(repo, tiny_study):
    workdir, configfile = tiny_study
    config = yaml.safe_load(configfile.read_text())
    langs, models = list(config["languages"]), list(config["models"])

    results = workdir / "results"
    for lang in langs:
        data = pd.read_parquet(results / "data" / f"{lang}.parquet")
        assert {"link", "question_number", "flores_passage", "correct_answer_num", "split"} <= set(data.columns)
    for model in models:
        assert (results / "models" / model / "base" / "xlt_model.json").is_file()
        assert (results / "models" / model / "adapter-arb_Arab" / "adapter_model.safetensors").is_file()
        assert "loss" in pd.read_csv(results / "models" / model / "adapter-arb_Arab" / "train_log.csv").columns
        for variant in VARIANTS:
            for prompt in PROMPTS:
                for lang in langs:
                    frame = pd.read_parquet(results / "predictions" / model / variant / prompt / f"{lang}.parquet")
                    rotations = list(ROTATION_COLUMNS) if prompt == "choice" else []
                    assert list(frame.columns) == [*PREDICTION_COLUMNS, *COT_COLUMNS, *rotations]
                    assert len(frame) == config["data"]["max_test_items"]
                    assert (frame["lang"] == lang).all() and (frame["variant"] == variant).all()
    accuracy = pd.read_csv(results / "scores" / "accuracy.csv")
    assert list(accuracy.columns) == list(ACCURACY_COLUMNS)
    assert len(accuracy) == len(models) * len(VARIANTS) * len(PROMPTS) * len(langs)
    effects = pd.read_csv(results / "stats" / "effects.csv")
    assert list(effects.columns) == ["model", SOURCE_COLUMN, *EFFECTS_COLUMNS[1:]]
    assert set(effects[SOURCE_COLUMN]) == {config["source_language"]}
    assert {"relatedness", "cot_relatedness", "ft_gain_related", "ft_gain_control"} <= set(effects["effect"])
    # An estimate is missing only where notes.csv gives the reason (the tiny models'
    # answers rarely change, so the logistic model and the power calculation lack data).
    notes = pd.read_csv(results / "stats" / "notes.csv", keep_default_na=False).query("table == 'effects'")
    missing = effects[effects["estimate"].isna()].merge(notes, on=["model", "prompt", "effect"])
    assert (missing["note"] != "").all() and len(missing) == effects["estimate"].isna().sum()
    assert list(pd.read_csv(results / "stats" / "alignment.csv").columns) == [SOURCE_COLUMN, *ALIGNMENT_COLUMNS]
    provenance = json.loads((results / "provenance.json").read_text())
    assert set(provenance["models"]) == set(models) and all(
        model["resolved"].startswith("sha256:") for model in provenance["models"].values()
    )
    assert (
        len(pd.read_parquet(results / "data" / "train" / f"{config['source_language']}.parquet"))
        == config["data"]["max_train_items"]
    )
    report = results / "report"
    assert "## Verdicts" in (report / "summary.md").read_text()
    for png in REPORT_PLOTS.values():
        assert (report / png).read_bytes()[:4] == b"\x89PNG"
    for page in REPORT_TABLES.values():
        assert "<table" in (report / page).read_text()
    assert {path.name for path in report.iterdir()} == {"summary.md", *REPORT_PLOTS.values(), *REPORT_TABLES.values()}
    # One log per job, named after the job's wildcards.
    logs = {str(path.relative_to(workdir / "logs")) for path in (workdir / "logs").rglob("*.log")}
    assert logs == {
        "prepare_data.log",
        "prepare_training.log",
        "provenance.log",
        "score.log",
        "compare.log",
        "report.log",
        "proximity.log",
        *(f"prepare_model/{model}.log" for model in models),
        *(f"finetune/{model}-arb_Arab.log" for model in models),
        *(f"predict/{model}/{variant}.log" for model in models for variant in VARIANTS),
    }

    assert run_snakemake(repo, workdir, configfile, dryrun=True) == []


def test_rule_graph_picture_matches_the_workflow(repo, tiny_study):
    """workflow/report/rulegraph.svg (in the README) is `snakemake --rulegraph | dot -Tsvg`."""
    workdir, configfile = tiny_study
    edges = rule_graph(snakemake_command(repo / "Snakefile", workdir, configfile, "--rulegraph"))
    assert ("finetune", "predict") in edges and ("report", "all") in edges
    assert rule_graph_of_svg(repo / "workflow" / "report" / "rulegraph.svg") == edges, (
        "redraw it: snakemake --rulegraph | dot -Tsvg > workflow/report/rulegraph.svg"
    )


def test_every_job_runs_this_checkouts_xlt(repo, tiny_study):
    """Every job is an `xlt <stage>` command with this checkout's src first on the module
    path, so it runs this code, not an xlt installed from another checkout."""
    workdir, configfile = tiny_study
    printed = snakemake_command(repo / "Snakefile", workdir, configfile, "-n", "-p", "--forceall")
    commands = [
        line.removeprefix("Shell command: ")
        for line in printed.splitlines()
        if line.startswith("Shell command: ") and line != "Shell command: None"
    ]
    stages = {command.split(" -m xlt ")[1].split()[0] for command in commands}
    assert stages == {
        "prepare-data",
        "prepare-training",
        "prepare-model",
        "finetune",
        "predict",
        "score",
        "compare",
        "report",
        "proximity",
        "provenance",
    }
    for command in commands:
        assert command.startswith(f"PYTHONPATH={repo / 'src'}" + "${PYTHONPATH:+:$PYTHONPATH} "), command[:200]


@pytest.mark.plans
def test_jobs_that_gate_others_start_first(repo, tmp_path):
    """With cores to spare for only some jobs, fine-tuning (its variant's predict job
    waits on it) starts first, then the base predict jobs, then the fine-tuned ones:
    `snakemake -n` on the default config prints each job's priority (0 unprinted)."""
    study = shipped_study(tmp_path)
    printed = snakemake_command(repo / "Snakefile", study, study / "config" / "config.yaml", "-n", "--forceall")
    priorities = {}
    for rule, fields in planned_jobs(printed):
        variant = (
            "base"
            if "variant=base" in fields.get("wildcards", "")
            else "ft"
            if "variant=" in fields.get("wildcards", "")
            else None
        )
        priorities.setdefault((rule, variant), set()).add(int(fields.get("priority", 0)))
    assert priorities[("finetune", None)] == priorities[("finetune_control", None)] == {2}
    assert priorities[("predict", "base")] == {1} and priorities[("predict", "ft")] == {0}
    assert all(
        found == {0}
        for (rule, _), found in priorities.items()
        if rule not in ("finetune", "finetune_control", "predict")
    )


@pytest.mark.plans
def test_one_source_plans_the_layout_of_several(repo, tmp_path):
    """The default study with one source plans the paths it has with two: the variant,
    adapter, merged checkpoint, checkpoints and logs name the source (no `ft`, no bare
    `adapter`), so adding a source renames nothing."""
    study = shipped_study(tmp_path)
    configfile = study / "config" / "config.yaml"
    config = yaml.safe_load(configfile.read_text(encoding="utf-8"))
    config["source_languages"] = ["arb_Arab"]
    config["models"]["smollm2-135m"]["finetune"] = {"merge": True}
    write_config(config, configfile)
    printed = snakemake_command(repo / "Snakefile", study, configfile, "-n", "-p", "--forceall")
    jobs = planned_jobs(printed)
    by_rule = {}
    for rule, fields in jobs:
        by_rule.setdefault(rule, []).append(fields)
    models = list(config["models"])
    assert sorted(job["output"] for job in by_rule["finetune"]) == sorted(
        f"results/models/{model}/adapter-arb_Arab" for model in models
    )
    assert sorted(job["log"] for job in by_rule["finetune"]) == sorted(
        f"logs/finetune/{model}-arb_Arab.log" for model in models
    )
    assert [(job["output"], job["log"]) for job in by_rule["merge"]] == [
        ("results/models/smollm2-135m/merged-arb_Arab", "logs/merge/smollm2-135m-arb_Arab.log")
    ]
    assert {job["wildcards"].split("variant=")[1] for job in by_rule["predict"]} == {
        "base",
        "ft-arb_Arab",
        "ctl-arb_Arab",
    }
    assert "--checkpoints results/checkpoints/smollm2-135m-arb_Arab " in printed
    assert "/ft/" not in printed and not re.search(r"/(adapter|merged)\b(?!-)", printed)


@pytest.mark.slow
def test_two_sources_run_to_the_report_and_a_second_run_does_nothing(repo, tiny_models, tmp_path):
    """The default study's shape (an Arabic and an unrelated source, a format-only
    control for the first) on the tiny dense model: one adapter and one predict job per
    source and control, the interaction and the gain over the control in effects.csv,
    the report's knowledge/format sentence once per source (the two-source default run's
    report crashed on a lookup by model alone)."""
    config = tiny_config(tiny_models)
    config["models"] = {"tiny-dense": config["models"]["tiny-dense"]}
    config["languages"]["tur_Latn"] = {"family": "Turkic", "script": "Latn"}
    del config["source_language"]
    config["source_languages"] = ["arb_Arab", "eng_Latn"]
    config["finetune"] = {"format_control": "first"}
    configfile = write_config(config, tmp_path / "config.yaml")
    run_snakemake(repo, tmp_path, configfile)

    results = tmp_path / "results"
    assert {path.name for path in (results / "predictions" / "tiny-dense").iterdir()} == {
        "base",
        "ft-arb_Arab",
        "ft-eng_Latn",
        "ctl-arb_Arab",
    }
    assert (results / "models" / "tiny-dense" / "adapter-ctl-arb_Arab" / "adapter_model.safetensors").is_file()
    effects = pd.read_csv(results / "stats" / "effects.csv", keep_default_na=False)
    assert set(effects[SOURCE_COLUMN]) == {"arb_Arab", "eng_Latn", ""}
    assert set(effects.loc[effects[SOURCE_COLUMN] == "", "effect"]) == {INTERACTION}
    over_control = effects[effects["effect"].str.startswith("ft_gain_over_control_")]
    assert set(over_control[SOURCE_COLUMN]) == {"arb_Arab"} and set(over_control["prompt"]) == {"direct", "cot"}
    summary = (results / "report" / "summary.md").read_text(encoding="utf-8")
    assert "fine-tuned on arb_Arab" in summary and "fine-tuned on eng_Latn" in summary
    assert "related-source minus unrelated-source fine-tuning gain" in summary
    assert run_snakemake(repo, tmp_path, configfile, dryrun=True) == []
