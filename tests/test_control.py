"""The format-only control (finetune.format_control): its training set is the source's,
example for example, prompt for prompt and mask for mask, with letters balanced over
A-D and drawn independently of the gold answers; the workflow plans its adapter and
predict jobs as a variant of its own."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from snakemake_runs import planned_jobs, shipped_study, snakemake_command
from test_finetune import TEMPLATE, tokenizer_of

from xlt.config import validate_config
from xlt.control import control_examples, control_letters
from xlt.errors import XltError
from xlt.finetune import IGNORE, build_examples
from xlt.jobs import job_settings, stage_settings
from xlt.languages import control_sources
from xlt.paths import discover_predictions, is_variant, study_variants
from xlt.prompts import answer_completion
from xlt.settings import PrepareDataSettings
from xlt.stages import prepare_control, prepare_data, prepare_training


@pytest.fixture(scope="module")
def training_sets(repo, study_config, tmp_path_factory):
    """The default study's Arabic training examples (fixture, data.seed), their control
    and the seed."""
    root = tmp_path_factory.mktemp("control")
    config = copy.deepcopy(study_config)
    config["data"]["fixture_dir"] = str(repo / config["data"]["fixture_dir"])
    langs = list(config["languages"])
    data = [str(root / f"{lang}.parquet") for lang in langs]
    prepare_data(settings=PrepareDataSettings(data=config["data"], langs=langs, all_test=False), outputs=data)
    real, control = root / "arb_Arab.parquet.train", root / "control-arb_Arab.parquet"
    training = replace(stage_settings(config, "prepare_training"), sources=["arb_Arab"])
    prepare_training(
        settings=training,
        data_files={"arb_Arab": data[0]},
        outputs=[str(real)],
        test_files=data,
        checks_out=str(root / "checks.json"),
    )
    control_settings = stage_settings(config, "prepare_control")
    prepare_control(settings=control_settings, training_file=str(real), output=str(control))
    seed = control_settings.seed
    return pd.read_parquet(real), pd.read_parquet(control), seed


def test_control_set_is_the_real_set_with_balanced_letters_independent_of_the_answers(training_sets):
    real, control, seed = training_sets
    assert len(real) == 32
    pd.testing.assert_frame_equal(real.drop(columns="correct_answer_num"), control.drop(columns="correct_answer_num"))
    # Balanced exactly: 8 of each letter on the fixture's 32 Arabic training examples.
    assert control["correct_answer_num"].value_counts().sort_index().to_dict() == {1: 8, 2: 8, 3: 8, 4: 8}
    # Independent: the letters are the same whatever the gold answers are.
    shuffled = real.assign(correct_answer_num=real["correct_answer_num"].sample(frac=1, random_state=1).to_numpy())
    assert (control_examples(shuffled, seed, "test")["correct_answer_num"] == control["correct_answer_num"]).all()
    crossed = pd.crosstab(real["correct_answer_num"], control["correct_answer_num"])
    assert (
        int(np.trace(crossed.to_numpy()))
        == int((real["correct_answer_num"] == control["correct_answer_num"]).sum())
        == 6
    )
    assert crossed.to_numpy().sum() == 32 and (crossed.sum(axis=0) == 8).all()


@pytest.mark.parametrize("name", ["tiny-dense", "tiny-moe"])
def test_control_examples_have_the_real_prompts_and_loss_masks(training_sets, prepared_tiny, name):
    """As the finetune stage builds them: the same prompt tokens and the same supervised
    positions; only the supervised answer differs, and it is the control's letter."""
    real, control, _ = training_sets
    tokenizer, chat = tokenizer_of(prepared_tiny, name)
    real_examples = build_examples(real, TEMPLATE, tokenizer, chat, {}, max_length=1024)
    control_examples_ = build_examples(control, TEMPLATE, tokenizer, chat, {}, max_length=1024)
    for first, second, letter in zip(real_examples, control_examples_, control["correct_answer_num"]):
        masked = [label == IGNORE for label in first["labels"]]
        assert masked == [label == IGNORE for label in second["labels"]]
        prompt = masked.index(False)
        assert first["input_ids"][:prompt] == second["input_ids"][:prompt]
        supervised = [token for token in second["labels"] if token != IGNORE]
        assert tokenizer.decode(supervised) == answer_completion(int(letter)) + tokenizer.eos_token


def test_control_letters_balance_any_count_and_follow_the_seed():
    for n in (1, 5, 30, 33):
        counts = np.bincount(control_letters(n, 0), minlength=5)[1:]
        assert counts.sum() == n and counts.max() - counts.min() <= (n % 4 > 0)
    assert (control_letters(40, 0) == control_letters(40, 0)).all() and not (
        control_letters(40, 0) == control_letters(40, 1)
    ).all()
    with pytest.raises(XltError, match="x.parquet: no training examples"):
        control_examples(pd.DataFrame({"correct_answer_num": []}), 0, "x.parquet")


def test_format_control_names_sources_first_by_default(study_config):
    config = copy.deepcopy(study_config)
    assert control_sources(config) == ["arb_Arab"]
    config["finetune"]["format_control"] = "first"
    assert control_sources(validate_config(config)) == ["arb_Arab"]
    config["finetune"]["format_control"] = ["pes_Arab"]
    assert study_variants(config["source_languages"], control_sources(config)) == [
        "base",
        "ft-arb_Arab",
        "ft-pes_Arab",
        "ctl-pes_Arab",
    ]
    config["finetune"]["format_control"] = ["tur_Latn"]
    with pytest.raises(
        XltError, match=r"finetune.format_control: 'tur_Latn' is not a source language \(arb_Arab, pes_Arab\)"
    ):
        validate_config(config)
    # Turning the control on reruns no existing job: no training example depends on it.
    assert job_settings(study_config, "prepare_training") == job_settings(
        config | {"finetune": {**config["finetune"], "format_control": []}}, "prepare_training"
    )


def test_control_predictions_are_a_variant_of_the_layout(tmp_path):
    assert is_variant("ctl-arb_Arab") and not is_variant("ctl-") and not is_variant("control")
    path = tmp_path / "m" / "ctl-arb_Arab" / "direct" / "eng_Latn.parquet"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    assert [found.variant for found in discover_predictions(tmp_path)] == ["ctl-arb_Arab"]


@pytest.mark.plans
def test_default_study_plans_the_control_adapter_and_its_predictions(repo, tmp_path):
    study = shipped_study(tmp_path)
    printed = snakemake_command(repo / "Snakefile", study, study / "config" / "config.yaml", "-n", "--forceall")
    jobs = [(rule, fields.get("wildcards", "")) for rule, fields in planned_jobs(printed)]
    assert sorted(wildcards for rule, wildcards in jobs if rule == "finetune_control") == [
        "model=gemma3-270m, source=arb_Arab",
        "model=smollm2-135m, source=arb_Arab",
    ]
    assert [wildcards for rule, wildcards in jobs if rule == "prepare_control"] == ["source=arb_Arab"]
    assert sum(rule == "predict" and "variant=ctl-arb_Arab" in wildcards for rule, wildcards in jobs) == 2
