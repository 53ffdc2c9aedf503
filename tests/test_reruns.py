"""What reruns when: plans (dry runs) against one completed run of the test config.
A model's settings are parameters of that model's jobs only, every stage's code hash
is a parameter of that stage only (the extractor's of scoring, the engine's of predict,
the statistics' of compare, fine-tuning's of finetune), resources are no parameters at
all, and `-R finetune` redoes fine-tuning and what
depends on it, not the base-model jobs."""

from __future__ import annotations

import copy
import re
import shutil

import pytest
import yaml
from snakemake_runs import planned_rules, run_snakemake

from xlt import paths

DOWNSTREAM = {"results/scores/accuracy.csv", "results/stats/effects.csv", "results/report/summary.md"}


def plan(repo, tiny_study, tmp_path, edit=None, forcerun=()) -> set[str]:
    """Outputs of the jobs a run would schedule after `edit(config)`."""
    workdir, configfile = tiny_study
    config = yaml.safe_load(configfile.read_text())
    if edit:
        config = copy.deepcopy(config)
        edit(config)
    changed = tmp_path / "config.yaml"
    # In the config's own key order: the order of `languages` is part of the study.
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    return set(run_snakemake(repo, workdir, changed, dryrun=True, forcerun=forcerun))


def jobs_of(outputs: set[str], model: str) -> set[str]:
    return {path for path in outputs if f"/{model}/" in path}


def test_nothing_changed_plans_nothing(repo, tiny_study, tmp_path):
    assert plan(repo, tiny_study, tmp_path) == set()


@pytest.mark.parametrize(
    "setting, reruns_finetune",
    [(("finetune", "learning_rate", 0.02), True), (("inference", "batch_size", 3), False)],
    ids=["finetune.learning_rate", "inference.batch_size"],
)
def test_one_models_settings_rerun_only_that_models_jobs(repo, tiny_study, tmp_path, setting, reruns_finetune):
    stage, key, value = setting

    def edit(config):
        config["models"]["tiny-moe"].setdefault(stage, {})[key] = value

    planned = plan(repo, tiny_study, tmp_path, edit)
    assert not jobs_of(planned, "tiny-dense"), "the other model's jobs are not planned"
    assert not any(path.startswith("results/data/") for path in planned), "prepare_data is not planned"
    assert "results/models/tiny-moe/base" not in planned, "prepare_model is not planned"
    assert ("results/models/tiny-moe/adapter-arb_Arab" in planned) == reruns_finetune
    for variant in ("ft-arb_Arab", "base") if not reruns_finetune else ("ft-arb_Arab",):
        for prompt in ("direct", "cot"):
            assert f"results/predictions/tiny-moe/{variant}/{prompt}/eng_Latn.parquet" in planned
    assert planned >= DOWNSTREAM


def test_resources_are_not_parameters(repo, tiny_study, tmp_path):
    def edit(config):
        entry = config["models"]["tiny-moe"]
        entry["finetune"]["resources"] = {"mem_mb": 1234, "runtime": 7, "threads": 2}
        entry.setdefault("inference", {})["resources"] = {"mem_mb": 1234, "runtime": 7}

    assert plan(repo, tiny_study, tmp_path, edit) == set()


def test_forcerun_finetune_redoes_finetuning_and_the_fine_tuned_predictions(repo, tiny_study, tmp_path):
    planned = plan(repo, tiny_study, tmp_path, forcerun=("finetune",))
    for model in ("tiny-dense", "tiny-moe"):
        assert f"results/models/{model}/adapter-arb_Arab" in planned
        assert {path for path in jobs_of(planned, model) if "/predictions/" in path} == {
            f"results/predictions/{model}/ft-arb_Arab/{prompt}/{lang}.parquet"
            for prompt in paths.PROMPTS
            for lang in ("arb_Arab", "heb_Hebr", "eng_Latn")
        }
        assert f"results/models/{model}/base" not in planned
    assert planned >= DOWNSTREAM


# A docstring edit and a code edit of each module; the code edit adds a module-level
# name, which changes no behaviour but is code, as any real change is.
DOCSTRING_EDIT = ('"""', '"""Edited. ', 1)
CODE_EDIT = "\nEDITED_BY_TEST = True\n"


@pytest.mark.slow  # 87 s for its six edits in all (2026-12-07)
@pytest.mark.parametrize(
    "source, edit, reruns",
    [
        # errors.py is imported by every stage: its docstring is no part of any result.
        ("src/xlt/errors.py", DOCSTRING_EDIT, {}),
        ("src/xlt/finetune.py", "\n# a comment\n", {}),
        ("src/xlt/extract.py", CODE_EDIT, {"score": 1, "compare": 1, "report": 1}),
        ("src/xlt/inference/engine.py", CODE_EDIT, {"predict": 4, "score": 1, "compare": 1, "report": 1}),
        ("src/xlt/stats/effects.py", CODE_EDIT, {"compare": 1, "report": 1}),
        # Fine-tuning and the fine-tuned predict jobs after it, not the base ones.
        ("src/xlt/finetune.py", CODE_EDIT, {"finetune": 2, "predict": 2, "score": 1, "compare": 1, "report": 1}),
    ],
    ids=["docstring of errors", "comment in fine-tuning", "extractor", "inference engine", "statistics", "fine-tuning"],
)
def test_changed_code_reruns_its_stage_and_what_follows_only(repo, tiny_study, tmp_path, source, edit, reruns):
    """A copy of the workflow whose source differs by one edit, planned by the snakemake
    command in a fresh process (this one has imported the original): each stage's code
    is hashed into its params (xlt.fingerprint), so a changed extractor reruns scoring, a
    changed engine inference, changed statistics compare, changed fine-tuning code
    finetune, and each what follows, nothing upstream; a docstring or a comment, which
    cannot change a result, reruns nothing."""
    workdir, configfile = tiny_study
    copy_root = tmp_path / "workflow-copy"
    copy_root.mkdir()
    for part in ("Snakefile", "workflow", "src", "config", "envs"):
        origin = repo / part
        if origin.is_dir():
            shutil.copytree(origin, copy_root / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, copy_root / part)
    assert planned_rules(copy_root / "Snakefile", workdir, configfile) == {}
    changed = copy_root / source
    text = changed.read_text()
    edited = text.replace(*edit) if isinstance(edit, tuple) else text + edit
    assert edited != text
    changed.write_text(edited)
    planned = planned_rules(copy_root / "Snakefile", workdir, configfile)
    planned.pop("all", None)
    assert planned == reruns


@pytest.mark.slow  # over 25 s: keeps the default suite under 15 minutes in a fresh clone
def test_a_changed_cot_budget_recomputes_the_cot_prompt_only(repo, tiny_study, tmp_path):
    """The predict jobs rerun (their settings changed) but read the direct prompt's
    results back from its shard: the direct and choice files come out byte for byte as
    they were, each job's log says every direct result was read back, and none of the
    CoT ones."""
    workdir, configfile = tiny_study
    study = tmp_path / "study"
    shutil.copytree(workdir, study, ignore=shutil.ignore_patterns("config.yaml"))
    config = yaml.safe_load(configfile.read_text())
    config["prompts"]["cot_max_new_tokens"] += 4
    changed = tmp_path / "config.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    kept = {
        path: path.read_bytes()
        for cell in ("direct", "choice")
        for path in (study / "results" / "predictions").glob(f"*/*/{cell}/*.parquet")
    }
    assert len(kept) == 2 * 2 * 2 * 3  # models x variants x cells x languages
    planned = run_snakemake(repo, study, changed)
    assert {path for path in planned if "/predictions/" in path} >= {str(path.relative_to(study)) for path in kept}
    assert {path: path.read_bytes() for path in kept} == kept
    for log in (study / "logs" / "predict").rglob("*.log"):
        text = log.read_text()
        direct = re.search(r"direct: (\d+) of (\d+) results read back", text)
        cot = re.search(r"cot: (\d+) of (\d+) results read back", text)
        assert direct and direct.group(1) == direct.group(2) != "0", log
        assert cot and cot.group(1) == "0", log


def test_a_changed_cloze_normalisation_reruns_scoring_and_what_follows_only(repo, tiny_study, tmp_path):
    """The cloze cell's options are chosen again by `xlt score` from their stored
    log-probabilities: no model job reruns."""

    def edit(config):
        config["prompts"]["cloze_normalisation"] = "pmi"

    planned = plan(repo, tiny_study, tmp_path, edit)
    assert planned >= DOWNSTREAM
    assert not any(path.startswith(("results/predictions/", "results/models/", "results/data/")) for path in planned), (
        planned
    )
