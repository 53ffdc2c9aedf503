"""No silent wrong number in the statistics (issue 24's probes of `xlt compare`): any
input that changes which items, cells, models, sources or tests a row rests on stops
with one line naming it or, where the user allowed it, is named on every affected row
of notes.csv; an interval that cannot be computed is NaN with a note; exactly one
primary test per model, or an error at planning that lists what the study allows."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from faultlib import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snakemake_runs import run_cli
from test_compare import CONFIG, write_foreign_tree
from test_scoring import label_scores, write_tree

from xlt.cli import main
from xlt.config import validate_config
from xlt.errors import XltError
from xlt.languages import language_table
from xlt.primary import INTERACTION
from xlt.report import study_verdicts
from xlt.simulate import Scenario, simulate_predictions
from xlt.simulate import study_variants as simulated_variants
from xlt.stats.compare import compare
from xlt.stats.settings import StatsSettings
from xlt.stats.sources import compare_study
from xlt.stattests import Resampling, sign_flip_p

DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))


def _compare(root, config: dict, out, *flags) -> int:
    path = out.parent / "config.json"
    path.write_text(json.dumps({"data": {}, "models": {"m1": {"id": "org/m1"}}, **config}))
    return main(["compare", "--predictions", str(root), "--config", str(path), "--out", str(out), *flags])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("xlt: error: ") and err.count("\n") == 1, err
    return err.removeprefix("xlt: error: ").rstrip("\n")


def _small_tree(models=("m1", "m2"), seed: int = 8) -> pd.DataFrame:
    """Predictions of 12 items for every cell of CONFIG's study, one model per name."""
    return simulate_predictions(
        {model: Scenario(n_items=12) for model in models},
        language_table(CONFIG),
        seed=seed,
        variants=simulated_variants(CONFIG),
    )


def _study(sources=("arb_Arab", "pes_Arab"), **stats) -> dict:
    config = {
        key: value
        for key, value in copy.deepcopy(DEFAULT).items()
        if key not in ("source_language", "source_languages")
    }
    # The format-only control of whichever source comes first (the default names arb_Arab).
    config["finetune"] = {**config.get("finetune", {}), "format_control": "first"}
    return validate_config({**config, "source_languages": list(sources), "stats": {**config.get("stats", {}), **stats}})


# --- finding 1: item ids that differ between languages ---------------------------------


def test_english_keeping_3_of_40_ids_stops_compare_or_is_named_on_every_row(tmp_path, capsys):
    """Finding 1: English kept 3 of the 40 ids, and compare ran on the 3 every language
    shares (n_items 3) without a word. Now every English cell is named as incomplete;
    allowed, every notes.csv row names them."""
    scenarios = {model: Scenario(n_items=40, baseline=0.4, ft_gain=0.2) for model in ("m1", "m2")}
    frame = simulate_predictions(scenarios, language_table(CONFIG), seed=5, variants=simulated_variants(CONFIG))
    kept = sorted(set(frame["item_id"]))[:3]
    write_foreign_tree(tmp_path / "predictions", frame[(frame["lang"] != "eng_Latn") | frame["item_id"].isin(kept)])
    assert _compare(tmp_path / "predictions", CONFIG, tmp_path / "stats") == 2
    err = _one_line(capsys)
    assert err.startswith(
        f"{tmp_path / 'predictions'}: 8 cell(s) missing or incomplete: m1/base/cot/eng_Latn.parquet (3 of 40 items), "
    )
    assert not (tmp_path / "stats").exists()
    assert _compare(tmp_path / "predictions", CONFIG, tmp_path / "stats", "--allow-missing") == 0
    effects = pd.read_csv(tmp_path / "stats" / "effects.csv")
    notes = pd.read_csv(tmp_path / "stats" / "notes.csv", keep_default_na=False)
    assert set(effects["n_items"]) == {3}
    assert notes["note"].str.contains("m1/base/direct/eng_Latn.parquet (3 of 40 items)", regex=False).all()


@pytest.fixture(scope="module")
def small_study():
    """A complete two-model tree of 12 items and its comparison."""
    study = {**CONFIG, "stats": {}}
    frame = simulate_predictions(
        {model: Scenario(n_items=12, baseline=0.4, ft_gain=0.2) for model in ("m1", "m2")},
        language_table(study),
        seed=9,
        variants=simulated_variants(study),
    )
    return frame, compare_study(frame, study, StatsSettings(bootstrap_samples=100))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_ids_dropped_from_any_one_cell_stop_compare_or_are_named(small_study, data):
    """The property behind finding 1: whichever item ids are dropped from whichever cell,
    compare's check stops naming that cell, and allowed, the notes name it: on every row
    when the cell is incomplete, on that model's rows when it is gone."""
    from xlt.completeness import CELL, cell_file, check_complete, note_missing

    frame, comparisons = small_study
    cell = data.draw(st.sampled_from(sorted(frame.groupby(list(CELL)).groups)))
    dropped = data.draw(st.sets(st.sampled_from(sorted(set(frame["item_id"]))), min_size=1))
    in_cell = np.logical_and.reduce([frame[column] == value for column, value in zip(CELL, cell)])
    items = frame[~(in_cell & frame["item_id"].isin(dropped))]
    with pytest.raises(XltError, match=cell_file(cell)):
        check_complete(items, CONFIG["languages"], False, "tree", variants=["base", "ft-arb_Arab"], prompts=["direct"])
    missing = check_complete(
        items, CONFIG["languages"], True, "tree", variants=["base", "ft-arb_Arab"], prompts=["direct"]
    )
    assert [found.cell for found in missing] == [cell]
    named = note_missing(comparisons, missing).notes["note"].str.contains(cell_file(cell), regex=False)
    notes = comparisons.notes
    assert (
        named.all()
        if missing[0].incomplete
        else named[notes["model"] == cell[0]].any()
        and not named[notes["model"] == ({"m1", "m2"} - {cell[0]}).pop()].any()
    )


# --- finding 2: a source missing from the tree ----------------------------------------


def test_a_two_source_tree_without_one_sources_variant_stops_or_keeps_the_interaction_primary(tmp_path, capsys):
    """Finding 2: a two-source tree lacking ft-pes_Arab for every model gave no
    interaction rows, and the primary test quietly became Arabic's relatedness. Now the
    source's cells are expected from the config: an error naming them; allowed, the
    primary test is still the interaction, one row per model with no estimate that says
    why, and no source's row is primary."""
    study = _study()
    variants = {variant: carries for variant, carries in simulated_variants(study).items() if variant != "ft-pes_Arab"}
    scenarios = {model: Scenario(n_items=24, baseline=0.4, ft_gain=0.2) for model in ("m1", "m2")}
    write_tree(
        tmp_path / "predictions", simulate_predictions(scenarios, language_table(study), seed=3, variants=variants)
    )
    config = {key: study[key] for key in ("languages", "source_languages", "related_families")} | {
        "stats": {"bootstrap_samples": 100}
    }
    assert _compare(tmp_path / "predictions", config, tmp_path / "stats") == 2
    assert "32 cell(s) missing or incomplete: m1/ft-pes_Arab/cot/arb_Arab.parquet," in _one_line(capsys)
    assert _compare(tmp_path / "predictions", config, tmp_path / "stats", "--allow-missing") == 0
    effects = pd.read_csv(tmp_path / "stats" / "effects.csv", keep_default_na=False)
    notes = pd.read_csv(tmp_path / "stats" / "notes.csv", keep_default_na=False)
    primary = effects[effects["role"] == "primary"]
    assert sorted(zip(primary["model"], primary["source"], primary["effect"])) == [
        ("m1", "", INTERACTION),
        ("m2", "", INTERACTION),
    ]
    assert (primary["estimate"] == "").all() and (primary["n_items"] == 0).all()
    for model, why in zip(
        notes.loc[notes["role"] == "primary", "model"], notes.loc[notes["role"] == "primary", "note"]
    ):
        assert why.startswith(
            f"no estimate: cells the primary test direct/{INTERACTION} reads are missing for {model}; "
            "computed without missing"
        )
        assert f"{model}/ft-pes_Arab/direct/arb_Arab.parquet" in why
    lines = study_verdicts(
        pd.read_csv(tmp_path / "stats" / "effects.csv"), ["m1", "m2"], 0.05, alpha=0.05, proximity_margin=0.1
    )
    assert (
        "m1 (primary test: direct prompt, related-source minus unrelated-source fine-tuning gain): no "
        "estimate (a language group or cell is missing)." in lines
    )


# --- finding 3: too few passages for an interval -------------------------------------


@pytest.mark.parametrize("passages", [1, 2, 5, 6])
def test_one_test_passage_gives_no_interval_not_a_zero_width_one(passages):
    """Finding 3: one test passage (data.test_fraction 0.001) gave zero-width "95%"
    intervals, an estimate of -5.6e-18 outside its own [2.1e-17, 2.1e-17]. Below
    minimum_clusters (6 passages at 95%) every bootstrap interval of effects, alignment
    and gains is NaN, and every row's note says why; from 6 on they are computed, and
    no interval is zero-width (where every item has one value there is none: issue 24)."""
    scenario = Scenario(n_items=2 * passages, questions_per_passage=2, baseline=0.4, ft_gain=0.2, passage_sd=1.0)
    frame = simulate_predictions(
        {model: scenario for model in ("m1", "m2", "m3")}, language_table(CONFIG), seed=passages
    )
    result = compare(frame, language_table(CONFIG), StatsSettings(bootstrap_samples=200))
    too_few = passages < 6  # stattests.minimum_clusters(0.95)
    effects, notes = result.effects, result.notes
    interval = effects[["ci_low", "ci_high"]]
    if too_few:
        tost = effects[["equivalence_p", "equivalence_p_adjusted", "equivalence_ci_low", "equivalence_ci_high"]]
        assert interval.isna().all().all() and tost.isna().all().all()
        assert result.gains[["ci_low", "ci_high", "normalised_ci_low", "normalised_ci_high"]].isna().all().all()
        model_language = result.alignment["statistic"].str.endswith(":model_language")
        assert result.alignment.loc[model_language, ["ci_low", "ci_high"]].isna().all().all()
        reason = f"no interval: {passages} passage{'s' * (passages != 1)}, fewer than the 6 a 95% interval needs"
        assert notes.loc[notes["table"] == "effects", "note"].str.contains(reason, regex=False).all()
        gains_notes = notes[notes["table"] == "gains"]
        assert sorted(gains_notes["model"]) == ["m1", "m2", "m3"] and gains_notes["note"].str.startswith(reason).all()
    else:
        assert interval.notna().any().all()
    finite = interval.notna().all(axis=1)
    assert not (finite & (effects["ci_low"] == effects["ci_high"])).any()


def test_minimum_clusters_is_where_a_sign_flip_test_can_first_reject():
    """The minimum's reason: on k clusters that all favour one side (the most extreme
    data there are) the sign-flip p-value is 2 / 2^k; below 6 it cannot reach 0.05."""
    from xlt.stattests import minimum_clusters

    for clusters in range(1, 9):
        resampling = Resampling.draw(clusters, 100, 0.95, seed=0, flips=20_000)
        p = sign_flip_p(np.ones(clusters), resampling.signs)
        assert (p <= 0.05) == (clusters >= minimum_clusters(0.95)), (clusters, p)
    assert [minimum_clusters(c) for c in (0.9, 0.95, 0.99)] == [5, 6, 8]


# --- finding 4 and 9: one primary test per model, checked when planning ---------------


def test_two_semitic_sources_have_no_automatic_primary_test_and_say_what_they_allow():
    """Finding 4: two Semitic sources (no interaction) gave two "primary" rows per model
    and Holm over each source's models. Now planning stops with the values this study
    allows; naming one source's test gives one primary row per model."""
    with pytest.raises(XltError) as caught:
        _study(("arb_Arab", "heb_Hebr"))
    message = str(caught.value)
    assert message.startswith(
        "config: stats.primary: 'auto': the sources arb_Arab, heb_Hebr are all inside related_families, "
        "so there is no relatedness_interaction"
    )
    assert (
        "allowed: direct/ft_gain_source@arb_Arab, " in message
        and "direct/relatedness@heb_Hebr" in message
        and "\n" not in message
    )
    study = _study(("arb_Arab", "heb_Hebr"), primary="direct/relatedness@heb_Hebr", bootstrap_samples=100)
    frame = simulate_predictions(
        {m: Scenario(n_items=12) for m in ("m1", "m2")},
        language_table(study),
        seed=1,
        variants=simulated_variants(study),
    )
    effects = compare_study(frame, study, StatsSettings.from_config(study["stats"])).effects
    primary = effects[effects["role"] == "primary"]
    assert sorted(zip(primary["model"], primary["source"], primary["prompt"], primary["effect"])) == [
        (m, "heb_Hebr", "direct", "relatedness") for m in ("m1", "m2")
    ]


def test_a_per_source_primary_test_with_two_sources_stops_at_planning():
    """Finding 4: `stats.primary: direct/relatedness` with two sources made each source's
    relatedness primary (two per model, Holm over each source's models)."""
    with pytest.raises(
        XltError,
        match=r"^config: stats.primary: 'direct/relatedness': with 2 source languages each has its own "
        r"direct/relatedness: name one",
    ):
        _study(primary="direct/relatedness")


# Each case compares a whole simulated study (seconds); the slow suite runs them all.
@pytest.mark.parametrize(
    "sources, primary",
    [
        (("arb_Arab",), "auto"),
        pytest.param(("arb_Arab",), "cot/cot_relatedness", marks=pytest.mark.slow),
        (("arb_Arab", "pes_Arab"), "auto"),
        pytest.param(("arb_Arab", "pes_Arab"), f"cot/{INTERACTION}", marks=pytest.mark.slow),
        (("arb_Arab", "pes_Arab"), "direct/same_family@pes_Arab"),
        pytest.param(("arb_Arab", "heb_Hebr", "pes_Arab"), "auto", marks=pytest.mark.slow),
        pytest.param(("arb_Arab", "heb_Hebr"), "cot/cot_mcnemar_eng_Latn@arb_Arab", marks=pytest.mark.slow),
        pytest.param(("pes_Arab", "tur_Latn"), "direct/ft_gain_control@tur_Latn", marks=pytest.mark.slow),
    ],
)
def test_exactly_one_primary_row_per_model_whatever_the_sources(sources, primary):
    """The property behind finding 4: any allowed stats.primary, any sources: one
    primary row per model, and it is the test the config names."""
    from xlt.primary import resolve_primary
    from xlt.stats.relatedness import effects_tested

    study = _study(sources, primary=primary, bootstrap_samples=100)
    test = resolve_primary(study, primary, effects_tested)
    frame = simulate_predictions(
        {m: Scenario(n_items=12) for m in ("m1", "m2")},
        language_table(study),
        seed=2,
        variants=simulated_variants(study),
    )
    effects = compare_study(frame, study, StatsSettings.from_config(study["stats"])).effects
    primary_rows = effects[effects["role"] == "primary"]
    assert sorted(primary_rows["model"]) == ["m1", "m2"]
    assert set(zip(primary_rows["source"], primary_rows["prompt"], primary_rows["effect"])) == {
        (test.source, test.prompt, test.effect)
    }


@pytest.mark.parametrize(
    "sources",
    [
        pytest.param(("arb_Arab",), marks=pytest.mark.slow),
        ("arb_Arab", "pes_Arab"),
        pytest.param(("pes_Arab", "tur_Latn"), marks=pytest.mark.slow),
    ],
)
def test_what_the_primary_test_may_name_is_what_compare_tests(sources):
    """effects_tested (what planning allows) names exactly the rows with a p-value that
    compare gives on a complete tree, for each source's view of the languages."""
    from xlt.stats.relatedness import effects_tested

    study = _study(
        sources,
        primary="auto" if sources[0] == "arb_Arab" else f"direct/relatedness@{sources[0]}",
        bootstrap_samples=100,
    )
    frame = simulate_predictions(
        {m: Scenario(n_items=60) for m in ("m1", "m2")},
        language_table(study),
        seed=4,
        variants=simulated_variants(study),
    )
    effects = compare_study(
        frame, study, StatsSettings(bootstrap_samples=100, primary=study["stats"]["primary"])
    ).effects
    for source in sources:
        rows = effects[(effects["source"] == source) & (effects["model"] != "pooled") & effects["p_value"].notna()]
        assert set(zip(rows["prompt"], rows["effect"])) == set(effects_tested(language_table(study, source))), source


@pytest.mark.parametrize("configfile", ["config.yaml", "paper.yaml"])
def test_every_value_planning_allows_passes_the_schema(repo, configfile):
    """Finding 9's second half: the values listed as allowed (mcnemar_arb_Arab among
    them) were rejected by the schema's own pattern."""
    from xlt.primary import allowed_primary
    from xlt.stats.relatedness import effects_tested

    config = yaml.safe_load((repo / "config" / configfile).read_text(encoding="utf-8"))
    allowed = allowed_primary(validate_config(config), effects_tested)
    assert "direct/mcnemar_arb_Arab@arb_Arab" in allowed
    for value in allowed:
        assert (
            validate_config({**config, "stats": {**config.get("stats", {}), "primary": value}})["stats"]["primary"]
            == value
        )


@pytest.mark.plans
def test_a_nonsense_primary_test_stops_snakemake_before_any_job(repo, tmp_path):
    """Finding 9: `stats.primary: direct/nonsense` planned all 19 jobs and failed in
    compare after every model job. Now `snakemake -n` stops, naming the values allowed."""
    config = copy.deepcopy(DEFAULT)
    config["stats"]["primary"] = "direct/nonsense"
    for key in ("data", "prompts"):
        config[key] = {**config.get(key, {})}
    config["data"]["fixture_dir"] = str(repo / "data" / "belebele_fixture")
    config["prompts"]["templates"] = str(repo / "config" / "templates")
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    result = run_cli(tmp_path, configfile, "-n")
    assert result.returncode != 0
    line = next(line for line in (result.stdout + result.stderr).splitlines() if "stats.primary" in line)
    assert line.startswith(f"{configfile}: stats.primary: 'direct/nonsense': not a test of this study; ")
    assert (
        "allowed: auto, direct/relatedness_interaction, cot/relatedness_interaction, direct/ft_gain_source@arb_Arab"
        in line
    )
    assert not (tmp_path / "results").exists()


# --- names the tables reserve, and item ids half keyed -------------------------------


def test_a_model_named_pooled_stops_compare_and_planning(tmp_path, capsys):
    write_foreign_tree(tmp_path / "predictions", _small_tree(("m1", "pooled"), seed=7))
    assert _compare(tmp_path / "predictions", CONFIG, tmp_path / "stats", "--allow-missing") == 2
    assert _one_line(capsys).endswith(
        "model 'pooled': the name is reserved for the rows estimated from all models together; rename that model"
    )
    config = copy.deepcopy(DEFAULT)
    config["models"]["pooled"] = config["models"].pop("gemma3-270m")
    with pytest.raises(
        XltError, match="^config: models.pooled: the name is reserved for the rows estimated from all models together"
    ):
        validate_config(config)


def test_item_ids_of_which_some_lack_a_passage_key_stop_compare(tmp_path, capsys):
    """Half the ids `link#question`, half plain: the plain ones would silently make every
    question its own passage."""
    frame = _small_tree()
    plain = frame["item_id"].isin(sorted(set(frame["item_id"]))[:4])
    write_tree(
        tmp_path / "predictions",
        frame.assign(item_id=frame["item_id"].where(~plain, frame["item_id"].str.replace("#", "-"))),
    )
    assert _compare(tmp_path / "predictions", CONFIG, tmp_path / "stats", "--allow-missing") == 2
    assert _one_line(capsys).endswith(
        "(4 of 12 ids lack '#'); item ids are link#question_number throughout (questions of a passage are "
        "resampled together) or plain ids throughout"
    )


# --- the second probe of `xlt compare` (2026-12-07) -----------------------------------


def test_a_gain_whose_cells_agree_on_every_item_has_no_interval_in_gains_csv():
    """gains.csv gave [0, 0] where the fine-tuned cell answered every item as the base
    did (33 of the default run's 96 rows): now NaN, as effects.csv has it, with a
    notes.csv row naming the gain and language."""
    frame = simulate_predictions({"m1": Scenario(n_items=40, questions_per_passage=2)}, language_table(CONFIG), seed=4)
    base = frame[(frame["variant"] == "base") & (frame["prompt"] == "direct") & (frame["lang"] == "heb_Hebr")]
    copied = (frame["variant"] == "ft") & (frame["prompt"] == "direct") & (frame["lang"] == "heb_Hebr")
    frame.loc[copied, "correct"] = base.set_index("item_id")["correct"].loc[frame.loc[copied, "item_id"]].to_numpy()
    result = compare(frame, language_table(CONFIG), StatsSettings(bootstrap_samples=200))
    gains = result.gains.set_index(["lang", "gain", "prompt"])
    assert gains.loc[("heb_Hebr", "ft_gain", "direct"), "estimate"] == 0
    assert gains.loc[("heb_Hebr", "ft_gain", "direct"), ["ci_low", "ci_high"]].isna().all()
    assert gains.drop(("heb_Hebr", "ft_gain", "direct"))[["ci_low", "ci_high"]].notna().all().all()
    named = result.notes[result.notes["table"] == "gains"]
    assert named[["model", "prompt", "effect"]].values.tolist() == [["m1", "direct", "ft_gain_heb_Hebr"]]
    assert named["note"].iloc[0].startswith("gain: no interval: every resample gives +0.000")


@pytest.mark.parametrize("passages", [1, 6])
def test_proximity_slopes_have_no_interval_on_too_few_passages(passages):
    """The proximity rows bootstrap target languages, and kept a 95% interval and a TOST
    ('equivalent', p 0.01) on one passage while their note said there was no interval:
    every gain they regress rests on those passages."""
    study = _study(bootstrap_samples=100)
    frame = simulate_predictions(
        {m: Scenario(n_items=2 * passages, questions_per_passage=2, language_gain_sd=0.1) for m in ("m1", "m2")},
        language_table(study),
        seed=3,
        variants=simulated_variants(study),
    )
    effects = compare_study(frame, study, StatsSettings.from_config(study["stats"])).effects
    slopes = effects[effects["effect"].str.startswith("proximity_") & effects["estimate"].notna()]
    assert set(slopes["effect"]) == {"proximity_slope", "proximity_interaction"}
    bounds = slopes[["ci_low", "ci_high", "equivalence_p", "equivalence_ci_low", "equivalence_ci_high"]]
    assert bounds.isna().all().all() if passages < 6 else bounds.notna().all().all()


def _tree_file(root, model="m1", variant="base", prompt="direct", lang="eng_Latn"):
    return root / model / variant / prompt / f"{lang}.parquet"


@pytest.fixture
def written(tmp_path):
    write_tree(tmp_path / "predictions", _small_tree())
    return tmp_path / "predictions"


def _rewrite(path, change) -> None:
    frame = pd.read_parquet(path)
    change(frame)
    frame.to_parquet(path)


def test_a_forced_answer_that_contradicts_the_stated_one_stops_compare(written, tmp_path, capsys):
    """compare scores CoT rows by forced_choice and `xlt score` by the stated answer
    first: a tree where they differ would give two readings of one cell."""
    path = _tree_file(written, prompt="cot")

    def contradict(frame):
        frame["forced_choice"] = (frame["parsed_choice"] % 4 + 1).astype("Int64")

    _rewrite(path, contradict)
    assert _compare(written, CONFIG, tmp_path / "stats") == 2
    assert _one_line(capsys).startswith(f"{path}: column forced_choice, row ")
    assert not (tmp_path / "stats").exists()


def test_rotations_on_some_choice_rows_only_stop_compare(written, tmp_path, capsys):
    """A choice row without its debiased choice was counted wrong in the debiased cell."""
    path = _tree_file(written, prompt="choice")
    path.parent.mkdir(parents=True)
    choice = pd.read_parquet(_tree_file(written)).assign(prompt="choice")
    choice["debiased_choice"] = pd.array([1] * (len(choice) - 1) + [None], dtype="Int64")
    choice.to_parquet(path)
    assert _compare(written, CONFIG, tmp_path / "stats") == 2
    assert _one_line(capsys) == (
        f"{path}: column debiased_choice, row 12: null where other choice rows have one; the rotations are on "
        "every choice row of a cell or on none (a tree from before them)"
    )


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [("item_id", ["a", "1"], "array(['a', '1'], dtype=object)"), ("model", 270, "270"), ("lang", 1.5, "1.5")],
)
def test_key_columns_of_another_type_are_named_not_a_traceback(written, tmp_path, capsys, column, value, shown):
    path = _tree_file(written)

    def retype(frame):
        frame[column] = [value] * len(frame)

    _rewrite(path, retype)
    assert _compare(written, CONFIG, tmp_path / "stats") == 2
    assert _one_line(capsys).startswith(f"{path}: column {column}, row 1: {shown}; allowed: text")


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (None, None),
        (
            "parsed",
            "column parsed_choice, row 1 (a choice row): option 2 but raw_output's likeliest label is A; a "
            "choice row chooses the label with the largest log-probability",
        ),
        (
            "rotation",
            "column rotation_choices, row 1 (a choice row): option 2 (its first entry, the unrotated prompt's "
            "choice) but raw_output's likeliest label is A; a choice row chooses the label with the largest "
            "log-probability",
        ),
        ("text", "column raw_output, row 1 (a choice row): 'Answer: A'; allowed: the four label log-probabilities"),
        ("positive", 'column raw_output, row 1 (a choice row): \'{"A": 0.5,'),
    ],
)
def test_a_choice_that_is_not_the_likeliest_label_stops_compare(written, tmp_path, capsys, mutation, expected):
    """compare counts a choice row's parsed_choice and never reads the label scores
    beside it: a choice that contradicts them (an argmin, letters read in another
    order) changed the choice cell's accuracy with exit status 0."""
    path = _tree_file(written, prompt="choice")
    path.parent.mkdir(parents=True)
    choice = pd.read_parquet(_tree_file(written)).assign(prompt="choice", parsed_choice=1)
    choice["correct"] = choice["answer"] == 1
    choice["raw_output"] = choice["parsed_choice"].map(label_scores)
    choice["rotation_choices"] = "[1, 2, 3, 4]"
    choice["debiased_choice"] = 1
    if mutation == "parsed":
        choice.loc[0, "parsed_choice"] = 2
        choice.loc[0, "correct"] = choice.loc[0, "answer"] == 2
        choice.loc[0, "rotation_choices"] = "[2, 2, 3, 4]"
    elif mutation == "rotation":
        choice.loc[0, "rotation_choices"] = "[2, 2, 3, 4]"
    elif mutation == "text":
        choice.loc[0, "raw_output"] = "Answer: A"
    elif mutation == "positive":
        choice.loc[0, "raw_output"] = label_scores(2).replace("-2.0", "0.5", 1)
    choice.to_parquet(path)
    # one choice cell of the study's 24: the others are allowed missing
    if expected is None:
        assert _compare(written, CONFIG, tmp_path / "stats", "--allow-missing") == 0
        return
    assert _compare(written, CONFIG, tmp_path / "stats", "--allow-missing") == 2
    assert _one_line(capsys).startswith(f"{path}: {expected}")
    assert not (tmp_path / "stats").exists()
