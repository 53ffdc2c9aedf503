import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.weightstats import DescrStatsW

from xlt.errors import XltError
from xlt.languages import language_table
from xlt.paths import ALIGNMENT_COLUMNS, EFFECTS_COLUMNS
from xlt.simulate import Scenario, simulate_predictions
from xlt.stats.alignment import alignment_table
from xlt.stats.cells import Passages, correctness
from xlt.stats.compare import compare
from xlt.stats.settings import StatsSettings
from xlt.stattests import (
    Resampling,
    equivalence_interval,
    equivalence_p,
    expanded_confidence,
    holm,
    minimum_detectable_effect,
    relabelling_p,
    sign_flip_p,
)
from xlt.verdict import verdict

# The default study's shape: Arabic source; Semitic targets in three scripts (Maltese in
# Latin); controls in the source's script (Persian, Urdu) and in Latin (Turkish, English).
CONFIG = {
    "languages": {
        "arb_Arab": {"family": "Semitic", "script": "Arab"},
        "heb_Hebr": {"family": "Semitic", "script": "Hebr"},
        "amh_Ethi": {"family": "Semitic", "script": "Ethi"},
        "mlt_Latn": {"family": "Semitic", "script": "Latn"},
        "tur_Latn": {"family": "Turkic", "script": "Latn"},
        "eng_Latn": {"family": "Indo-European", "script": "Latn"},
        "pes_Arab": {"family": "Indo-European", "script": "Arab"},
        "urd_Arab": {"family": "Indo-European", "script": "Arab"},
    },
    "source_language": "arb_Arab",
    "related_families": ["Semitic"],
}
LANGUAGES = language_table(CONFIG)
SETTINGS = StatsSettings(bootstrap_samples=500, seed=1)


def rows(table, model, prompt):
    return table[(table["model"] == model) & (table["prompt"] == prompt)].set_index("effect")


def test_effects_have_the_contract_columns_and_recover_a_known_advantage():
    scenarios = {m: Scenario(n_items=300, ft_gain=0.05, related_advantage=0.25) for m in ("m1", "m2", "m3")}
    result = compare(simulate_predictions(scenarios, LANGUAGES, seed=2), LANGUAGES, SETTINGS)
    assert list(result.effects.columns) == list(EFFECTS_COLUMNS)
    assert list(result.alignment.columns) == list(ALIGNMENT_COLUMNS)
    effects = rows(result.effects, "m1", "direct")
    assert effects.loc["relatedness", "estimate"] == pytest.approx(0.25, abs=0.06)
    assert effects.loc["relatedness", "ci_low"] > 0.15 and effects.loc["relatedness", "p_adjusted"] < 0.01
    assert effects.loc["relatedness_gee", "estimate"] > 0 and effects.loc["relatedness_gee", "p_value"] < 0.01
    assert effects.loc["same_family", "ci_low"] > 0.1  # the advantage is the family's...
    assert effects.loc["same_script", "ci_low"] < 0 < effects.loc["same_script", "ci_high"]  # ...not the script's
    control = effects.loc["ft_gain_control"]
    assert control.estimate == pytest.approx(0.05, abs=0.05) and control.ci_low < 0.05 < control.ci_high
    assert (result.effects["n_items"] == 300).all()
    # Every row has an estimate; tests have both p-values; accuracy-scale rows a TOST.
    assert result.effects["estimate"].notna().all()
    tested = result.effects["p_value"].notna()
    assert result.effects.loc[tested, "p_adjusted"].notna().all()
    assert (
        rows(result.effects, "m2", "cot")
        .loc[["cot_relatedness", "cot_same_script", "cot_mcnemar_heb_Hebr"], "equivalence_p"]
        .notna()
        .all()
    )


def test_script_is_separated_from_family():
    """A gain that follows the source's script (Persian, Urdu) is not a family effect."""
    scenarios = {"m": Scenario(n_items=400, script_advantage=0.25)}
    effects = rows(
        compare(simulate_predictions(scenarios, LANGUAGES, seed=5), LANGUAGES, SETTINGS).effects, "m", "direct"
    )
    assert (
        effects.loc["same_script", "estimate"] == pytest.approx(0.25, abs=0.07)
        and effects.loc["same_script", "p_value"] < 0.01
    )
    assert effects.loc["same_family", "ci_low"] < 0 < effects.loc["same_family", "ci_high"]
    assert effects.loc["same_script_gee", "p_value"] < 0.01


def test_equal_gains_everywhere_are_declared_equivalent():
    scenarios = {"m": Scenario(n_items=2500, ft_gain=0.2)}
    result = compare(simulate_predictions(scenarios, LANGUAGES, seed=4), LANGUAGES, SETTINGS)
    effects = rows(result.effects, "m", "direct")
    assert abs(effects.loc["relatedness", "estimate"]) < 0.03
    assert effects.loc["relatedness", "equivalence_p"] < 0.05
    assert effects.loc["ft_gain_control", "p_value"] < 0.001
    assert effects.loc["relatedness_mde", "estimate"] < 0.05
    sentence = verdict(result.effects, "m", "direct", 0.05, alpha=0.05, proximity_margin=0.1)
    assert "no related-language advantage larger than 5 points (Holm-adjusted TOST p=" in sentence
    row = effects.loc["relatedness"]
    assert -0.05 < row.equivalence_ci_low < row.estimate < row.equivalence_ci_high < 0.05
    assert (
        f"the TOST's 90% interval {100 * row.equivalence_ci_low:+.1f} to {100 * row.equivalence_ci_high:+.1f}"
        in sentence
    )


def test_identical_predictions_are_not_taken_for_certainty():
    """A model that gives the same answers in every cell carries no information on the
    spread of the gain: on 16 items that must not prove equivalence, and the logistic
    model has nothing to fit."""
    frame = simulate_predictions({"m": Scenario(n_items=16)}, LANGUAGES, seed=0)
    frame["parsed_choice"] = pd.array([1] * len(frame), dtype="Int64")
    frame["correct"] = frame["answer"] == 1
    result = compare(frame, LANGUAGES, SETTINGS)
    effects = rows(result.effects, "m", "direct")
    assert effects.loc["relatedness", "estimate"] == 0 and effects.loc["relatedness", "p_value"] == 1
    # No spread, so no interval and no TOST (issue 24): NaN, never a zero-width "equivalence".
    assert (
        effects.loc["relatedness", ["ci_low", "ci_high", "equivalence_p", "equivalence_ci_low", "equivalence_ci_high"]]
        .isna()
        .all()
    )
    assert np.isnan(effects.loc["relatedness_mde", "estimate"]) and np.isnan(effects.loc["relatedness_gee", "estimate"])
    notes = result.notes.set_index(["model", "prompt", "effect"])["note"]
    assert "no spread" in notes[("m", "direct", "relatedness_mde")]
    assert "no item changes between base/direct and ft/direct" in notes[("m", "direct", "relatedness_gee")]
    assert "no interval: every resample gives +0.000" in notes[("m", "direct", "relatedness")]
    assert "no TOST" in notes[("m", "direct", "relatedness")]
    sentence = verdict(result.effects, "m", "direct", 0.05, alpha=0.05, proximity_margin=0.1, notes=result.notes)
    assert (
        "inconclusive" in sentence and "every item shows the same difference, so the data cannot bound it" in sentence
    )
    assert "difference +0.0 points, no interval;" in sentence and "nan" not in sentence


def test_equivalence_p_matches_the_t_tost_on_regular_data_and_grows_honest_on_degenerate_data():
    rng = np.random.default_rng(0)
    values = rng.choice([-1.0, 0.0, 0.0, 0.0, 1.0], size=600) / 2
    expected = DescrStatsW(values).ttost_mean(-0.05, 0.05)[0]
    assert equivalence_p(values, 0.05, -2, 2) == pytest.approx(expected, rel=0.15)
    # All-zero differences: with few items a 5-point advantage is still plausible.
    assert equivalence_p(np.zeros(16), 0.05, -2, 2) > 0.1
    assert equivalence_p(np.zeros(2000), 0.05, -2, 2) < 1e-6
    assert equivalence_p(np.full(200, 0.3), 0.05, -2, 2) > 0.99


def test_mcnemar_rows_are_the_exact_binomial_test_on_discordant_pairs():
    frame = simulate_predictions({"m": Scenario(n_items=60, ft_gain=0.15)}, LANGUAGES, seed=3)
    effects = rows(compare(frame, LANGUAGES, SETTINGS).effects, "m", "direct")
    wide = frame[(frame.lang == "tur_Latn") & (frame.prompt == "direct")].pivot(
        index="item_id", columns="variant", values="correct"
    )
    up, down = int((wide.ft & ~wide.base).sum()), int((~wide.ft & wide.base).sum())
    assert effects.loc["mcnemar_tur_Latn", "p_value"] == pytest.approx(scipy_stats.binomtest(up, up + down).pvalue)
    assert effects.loc["mcnemar_tur_Latn", "estimate"] == pytest.approx((up - down) / 60)


def test_holm_adjusts_the_primary_test_across_models_and_the_rest_within_model_and_prompt():
    scenarios = {"a": Scenario(n_items=80), "b": Scenario(n_items=80), "c": Scenario(n_items=80, related_advantage=0.2)}
    result = compare(simulate_predictions(scenarios, LANGUAGES, seed=6), LANGUAGES, SETTINGS)
    effects = result.effects
    primary = effects[effects.role == "primary"]
    assert set(zip(primary.model, primary.prompt, primary.effect)) == {(m, "direct", "relatedness") for m in scenarios}
    assert primary["p_adjusted"].tolist() == pytest.approx(holm(primary["p_value"].tolist()))
    assert primary["equivalence_p_adjusted"].tolist() == pytest.approx(holm(primary["equivalence_p"].tolist()))
    assert effects.loc[effects.role == "secondary", "equivalence_p_adjusted"].isna().all()
    # The secondary family of b / direct leaves the primary test out.
    family = effects[
        (effects.model == "b") & (effects.prompt == "direct") & effects.p_value.notna() & (effects.role == "secondary")
    ]
    assert family["p_adjusted"].tolist() == pytest.approx(holm(family["p_value"].tolist()))
    assert {"relatedness_permutation", "relatedness_gee", "mcnemar_amh_Ethi", "ft_gain_related"} <= set(
        family["effect"]
    )
    notes = result.notes.set_index(["model", "prompt", "effect"])
    assert (
        notes.loc[("b", "direct", "relatedness"), "holm_family"]
        == "primary: Holm across the 3 models' direct/relatedness tests (p and TOST p adjusted separately)"
    )
    assert (
        notes.loc[("b", "direct", "ft_gain_related"), "holm_family"]
        == f"secondary: Holm over the {len(family)} secondary p-values of b / direct"
    )
    assert (result.notes.role == "secondary").sum() == len(result.notes) - 3
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_the_primary_test_is_declared_in_config():
    frame = simulate_predictions({"a": Scenario(n_items=40), "b": Scenario(n_items=40)}, LANGUAGES, seed=6)
    effects = compare(frame, LANGUAGES, StatsSettings(bootstrap_samples=200, primary="cot/cot_relatedness")).effects
    assert (
        set(effects.loc[effects.role == "primary", "effect"]) == {"cot_relatedness"}
        and (effects.role == "primary").sum() == 2
    )
    with pytest.raises(
        XltError,
        match="stats.primary: 'direct/relatednes' is not a test of this study; allowed: auto, .*direct/relatedness,",
    ):
        compare(frame, LANGUAGES, StatsSettings(bootstrap_samples=200, primary="direct/relatednes"))


def test_language_label_permutation_is_exact_for_few_languages():
    p, relabellings, exact = relabelling_p(np.array([0.3, 0.3, 0.3, 0.0, 0.0, 0.0, 0.0]), 3, seed=0)
    assert (relabellings, exact) == (35, True) and p == pytest.approx(1 / 35)
    p, relabellings, exact = relabelling_p(np.arange(30, dtype=float), 15, seed=0)
    assert not exact and relabellings == 20_000 and p < 0.001
    # Two-sided with groups of 4 and 4: a split and its complement tie, so 2 of 70 at best.
    p, relabellings, exact = relabelling_p(np.array([0.3] * 4 + [0.0] * 4), 4, seed=0)
    assert (relabellings, exact) == (70, True) and p == pytest.approx(2 / 70)


def test_sign_flips_and_bootstrap_are_paired_over_items():
    resampling = Resampling.draw(40, 300, 0.95, seed=0)
    values = np.random.default_rng(1).random((40, 3))
    k = 17
    assert resampling.means(values)[k] == pytest.approx(
        np.repeat(values, resampling.counts[k].astype(int), axis=0).mean(axis=0)
    )
    assert sign_flip_p(np.zeros(30), resampling.signs[:, :30]) == 1.0
    assert sign_flip_p(np.ones(30), resampling.signs[:, :30]) < 0.001
    assert sign_flip_p(np.random.default_rng(0).choice([-1.0, 1.0], 40), resampling.signs) > 0.05
    assert expanded_confidence(0.95, 16) > 0.97 and expanded_confidence(0.95, 900) == pytest.approx(0.95, abs=0.001)


def test_alignment_correlates_ft_and_cot_gains_across_models():
    gains = {"weak": 0.3, "mid": 0.15, "strong": 0.05, "top": 0.0}
    scenarios = {model: Scenario(n_items=300, baseline=0.6 - g, ft_gain=g, cot_gain=g) for model, g in gains.items()}
    result = compare(simulate_predictions(scenarios, LANGUAGES, seed=10), LANGUAGES, SETTINGS)
    alignment = result.alignment.set_index("statistic")
    assert alignment.loc["pearson:ft_gain~cot_gain:models", "estimate"] > 0.8
    assert alignment.loc["pearson:ft_gain~cot_gain:models", "n_models"] == 4
    assert alignment.loc["pearson:baseline~ft_gain:models:split_items", "estimate"] < -0.8
    # Four models give 4! = 24 pairings: the exact permutation p cannot go below 1/24.
    assert alignment.loc["spearman:ft_gain~cot_gain:models", "p_value"] == pytest.approx(2 / 24)


def test_split_items_remove_the_regression_to_the_mean_artefact():
    """Equal true gains in every model and language: a weak measured baseline still
    goes with a large measured gain, because both contain the same noise with opposite
    signs. Measuring them on disjoint items removes that."""
    scenarios = {model: Scenario(n_items=40, ft_gain=0.1) for model in ("a", "b", "c", "d")}
    alignment = compare(simulate_predictions(scenarios, LANGUAGES, seed=11), LANGUAGES, SETTINGS).alignment.set_index(
        "statistic"
    )
    naive = alignment.loc["pearson:baseline~ft_gain:model_language"]
    split = alignment.loc["pearson:baseline~ft_gain:model_language:split_items"]
    assert naive.ci_high < 0
    assert split.ci_low < 0 < split.ci_high and abs(split.estimate) < abs(naive.estimate)


def test_alignment_needs_three_models_and_says_so():
    result = compare(
        simulate_predictions({"m1": Scenario(n_items=30), "m2": Scenario(n_items=30)}, LANGUAGES, seed=0),
        LANGUAGES,
        SETTINGS,
    )
    alignment = result.alignment.set_index("statistic")
    assert np.isnan(alignment.loc["pearson:ft_gain~cot_gain:models", "estimate"])
    assert np.isfinite(alignment.loc["pearson:ft_gain~cot_gain:model_language", "estimate"])
    notes = result.notes.set_index("effect")["note"]
    assert notes["pearson:ft_gain~cot_gain:models"] == "needs at least 3 points, has 2"


def test_alignment_has_no_zero_width_or_full_width_fisher_interval():
    """Models in one order give a Spearman correlation of +-1, whose Fisher-z interval
    would be [r, r]; three models leave no degree of freedom, whose interval would be
    [-1, 1] beside a note that says there is none. Both are NaN, with the reason."""
    gains = {"weak": 0.3, "mid": 0.15, "strong": 0.05, "top": 0.0}
    scenarios = {model: Scenario(n_items=300, baseline=0.6 - g, ft_gain=g, cot_gain=g) for model, g in gains.items()}
    result = compare(simulate_predictions(scenarios, LANGUAGES, seed=10), LANGUAGES, SETTINGS)
    ranked = result.alignment.set_index("statistic").loc["spearman:ft_gain~cot_gain:models"]
    assert abs(ranked.estimate) == pytest.approx(1)
    assert np.isnan(ranked.ci_low) and np.isnan(ranked.ci_high)
    notes = result.notes.set_index("effect")["note"]
    assert "Fisher's z has no spread" in notes["spearman:ft_gain~cot_gain:models"]
    three = {model: scenarios[model] for model in ("weak", "mid", "strong")}
    few = compare(simulate_predictions(three, LANGUAGES, seed=10), LANGUAGES, SETTINGS)
    rows = few.alignment[few.alignment["statistic"].str.endswith(":models")]
    assert rows["estimate"].notna().all() and rows["ci_low"].isna().all() and rows["ci_high"].isna().all()


def test_gains_say_when_resamples_without_headroom_are_left_out_of_the_normalised_interval():
    """A language at 23 of 24 before fine-tuning is at 100% in about a third of the
    resamples, where its normalised gain does not exist: gains.csv's interval is over the
    rest, and notes.csv says so, as it does for effects.csv's normalised rows."""
    items = simulate_predictions({"m": Scenario(n_items=24, baseline=0.93, ft_gain=0.0)}, LANGUAGES, seed=3)
    result = compare(items, LANGUAGES, SETTINGS)
    gains = result.gains.set_index(["gain", "prompt", "lang"])
    heb = gains.loc[("ft_gain", "direct", "heb_Hebr")]
    assert heb["before"] == pytest.approx(23 / 24) and np.isfinite(heb["normalised_ci_low"])
    notes = result.notes[(result.notes["table"] == "gains") & (result.notes["prompt"] == "direct")]
    said = notes.set_index("effect")["note"].get("ft_gain_heb_Hebr", "")
    assert "of resamples have the language at 100% before the change and are left out of the interval" in said


def test_a_normalised_gain_of_one_everywhere_is_said_to_be_the_ceiling_not_agreeing_items():
    """Arabic goes from 22 of 24 to 24 of 24: its normalised gain is +1 in every resample,
    because it ends at 100%, not because the cells agree on every item (they differ on 2)."""
    items = simulate_predictions({"m": Scenario(n_items=24, baseline=0.93, ft_gain=0.0)}, LANGUAGES, seed=3)
    result = compare(items, LANGUAGES, SETTINGS)
    arb = result.gains.set_index(["gain", "prompt", "lang"]).loc[("ft_gain", "direct", "arb_Arab")]
    assert arb["after"] == 1 and arb["before"] < 1 and np.isnan(arb["normalised_ci_low"])
    notes = result.notes[(result.notes["table"] == "gains") & (result.notes["prompt"] == "direct")]
    said = notes.set_index("effect")["note"]["ft_gain_arb_Arab"]
    assert "every language compared is at 100% after the change" in said
    assert "agree on every item" not in said
    source = result.notes[(result.notes["effect"] == "ft_gain_norm_source") & (result.notes["prompt"] == "direct")]
    assert "every language compared is at 100% after the change" in source["note"].iloc[0]


def test_verdict_states_an_advantage_and_its_bound():
    effects = pd.DataFrame(
        [
            ["m", "direct", "relatedness", 0.12, 0.07, 0.17, 0.0001, 0.001, 0.9, 400, "primary", 0.99, 0.08, 0.16],
            [
                "m",
                "direct",
                "relatedness_mde",
                0.06,
                np.nan,
                np.nan,
                np.nan,
                np.nan,
                np.nan,
                400,
                "secondary",
                np.nan,
                np.nan,
                np.nan,
            ],
        ],
        columns=list(EFFECTS_COLUMNS),
    )
    sentence = verdict(effects, "m", "direct", 0.05, alpha=0.05, proximity_margin=0.1)
    assert sentence.startswith(
        "m (primary test: direct prompt, fine-tuning gain): a related-language advantage (difference +12.0 points"
    )
    assert (
        "Holm p across models=0.001" in sentence
        and "Holm-adjusted TOST p=0.99, the TOST's 90% interval +8.0 to +16.0" in sentence
    )
    assert "With 400 items an advantage of 6.0 points is detected with 80% power." in sentence
    assert "no estimate" in verdict(effects, "m", "cot", 0.05, alpha=0.05, proximity_margin=0.1)


def test_passages_come_from_the_item_id_and_default_to_one_question_each():
    passages = Passages.of(["https://a#1", "https://a#2", "https://b#1", "https://c#3", "https://c#4"])
    assert passages.index.tolist() == [0, 0, 1, 2, 2] and passages.keyed and passages.n == 3
    foreign = Passages.of(["17", "3", "40"])
    assert foreign.index.tolist() == [0, 1, 2] and not foreign.keyed
    assert "3 questions treated as independent" in foreign.describe()


def test_resampling_draws_and_flips_whole_passages():
    clusters = np.repeat(np.arange(30), 2)
    resampling = Resampling.draw(clusters, 200, 0.95, seed=0)
    assert (resampling.counts[:, 0::2] == resampling.counts[:, 1::2]).all() and (
        resampling.signs[:, 0::2] == resampling.signs[:, 1::2]
    ).all()
    assert resampling.n_clusters == 30 and not resampling.singletons
    # Thirty passages of two questions: the interval is as wide as thirty items' would be.
    assert expanded_confidence(0.95, resampling.n_clusters) == pytest.approx(expanded_confidence(0.95, 30))


def test_a_passage_of_two_identical_questions_counts_as_one():
    """Duplicating every question as a second question on its passage adds no
    information: every clustered statistic is what the single questions give, while
    the question-level view would take the duplicates for twice the evidence."""
    scenarios = {m: Scenario(n_items=60, ft_gain=0.1, related_advantage=0.1, cot_gain=0.05) for m in ("m1", "m2", "m3")}
    single = simulate_predictions(scenarios, LANGUAGES, seed=8)
    double = pd.concat([single, single.assign(item_id=single["item_id"].str.replace("#1", "#2"))], ignore_index=True)
    one, two = compare(single, LANGUAGES, SETTINGS), compare(double, LANGUAGES, SETTINGS)
    kept = ~one.effects["effect"].str.contains("mcnemar")
    columns = ["estimate", "ci_low", "ci_high", "p_value", "equivalence_p"]
    assert two.effects.loc[kept, columns].to_numpy() == pytest.approx(
        one.effects.loc[kept, columns].to_numpy(), nan_ok=True, abs=1e-6
    )
    assert (two.effects["n_items"] == 120).all()
    assert two.alignment[["estimate", "ci_low", "ci_high"]].to_numpy() == pytest.approx(
        one.alignment[["estimate", "ci_low", "ci_high"]].to_numpy(), nan_ok=True
    )
    method = two.notes.set_index(["model", "prompt", "effect"])["method"]
    assert "bootstrap over passages" in method[("m1", "direct", "relatedness")]
    assert (
        "passage sign-flip" in method[("m1", "direct", "mcnemar_heb_Hebr")]
        and "exact McNemar" in one.notes["method"].str.cat()
    )
    # Treated as independent questions, the same duplicates look like twice the evidence.
    values = np.repeat(np.random.default_rng(0).choice([-1.0, 0.0, 1.0], 60), 2)
    clusters = np.repeat(np.arange(60), 2)
    assert minimum_detectable_effect(values, 0.95) == pytest.approx(
        minimum_detectable_effect(values, 0.95, clusters=clusters) / np.sqrt(2), rel=0.01
    )
    assert equivalence_p(values, 0.05, -1, 1) < equivalence_p(values, 0.05, -1, 1, clusters)


def test_equivalence_interval_is_what_the_tost_inverts():
    values = np.random.default_rng(3).choice([-1.0, 0.0, 0.0, 1.0], size=400) / 2
    clusters = np.arange(400) // 2
    low, high = equivalence_interval(values, 0.05, -1, 1, clusters)
    assert low < values.mean() < high
    # The TOST at 5% declares equivalence for a margin just outside the 90% interval, not just inside it.
    outside, inside = max(-low, high) + 1e-4, max(-low, high) - 1e-4
    assert equivalence_p(values, outside, -1, 1, clusters) < 0.05 < equivalence_p(values, inside, -1, 1, clusters)


@pytest.mark.slow  # 15.5 s (2026-12-07)
def test_pooled_model_finds_relatedness_across_models_at_equal_baselines():
    """Three models with a 15-point related advantage and baselines from 30% to 60%:
    the pooled GEE (one intercept per model x language, the gain allowed to depend on
    the baseline) finds it; with no advantage it finds nothing."""
    planted = {
        m: Scenario(n_items=150, baseline=b, ft_gain=0.1, related_advantage=0.15)
        for m, b in (("a", 0.3), ("b", 0.45), ("c", 0.6))
    }
    null = {m: scenario.with_(related_advantage=0.0) for m, scenario in planted.items()}
    found = rows(
        compare(simulate_predictions(planted, LANGUAGES, seed=12), LANGUAGES, SETTINGS).effects, "pooled", "direct"
    )
    assert found.loc["relatedness_gee", "estimate"] > 0.3 and found.loc["relatedness_gee", "p_value"] < 0.001
    assert found.loc["relatedness_gee", "role"] == "secondary" and np.isfinite(found.loc["baseline_gee", "estimate"])
    result = compare(simulate_predictions(null, LANGUAGES, seed=13), LANGUAGES, SETTINGS)
    nothing = rows(result.effects, "pooled", "direct").loc["relatedness_gee"]
    assert nothing.ci_low < 0 < nothing.ci_high and nothing.n_items == 150
    method = result.notes.set_index(["model", "prompt", "effect"]).loc[
        ("pooled", "direct", "relatedness_gee"), "method"
    ]
    assert method.startswith(
        "binomial GEE over 3 models, correct ~ C(cell) + C(model):treated + treated:baseline + treated:related"
    )
    assert set(rows(result.effects, "pooled", "cot").index) == {
        "relatedness_gee",
        "baseline_gee",
        "cot_relatedness_gee",
        "cot_baseline_gee",
    }


def _alignment(scenarios, seed):
    cells, passages = correctness(simulate_predictions(scenarios, LANGUAGES, seed=seed))
    return alignment_table(cells, LANGUAGES, SETTINGS, SETTINGS.resampling(passages.index))[0].set_index("statistic")


def test_alignment_from_the_shared_cells_noise_is_removed():
    """Equal true accuracies everywhere: only the measured base/direct cell, which both
    gains subtract, makes them differ together across the units. Disjoint halves of
    the passages (each gain with its own baseline half) remove that."""
    noise = {
        f"m{k}": Scenario(
            n_items=60, baseline=0.5, ft_gain=0.2, cot_gain=0.2, questions_per_passage=2, passage_cell_sd=0.5
        )
        for k in range(8)
    }
    alignment = _alignment(noise, seed=14)
    assert alignment.loc["pearson:ft_gain~cot_gain:model_language", "estimate"] > 0.3
    assert abs(alignment.loc["pearson:ft_gain~cot_gain:model_language:split_items", "estimate"]) < 0.25
    assert alignment.loc["pearson:ft_gain~cot_gain:models", "estimate"] > 0.3
    assert abs(alignment.loc["pearson:ft_gain~cot_gain:models:split_items", "estimate"]) < 0.5


def test_alignment_across_models_has_the_models_as_its_unit():
    scenarios = {
        f"m{k}": Scenario(n_items=100, baseline=0.6 - g, ft_gain=g, cot_gain=g)
        for k, g in enumerate(np.linspace(0.0, 0.3, 7))
    }
    cells, passages = correctness(simulate_predictions(scenarios, LANGUAGES, seed=16))
    alignment, notes = alignment_table(cells, LANGUAGES, SETTINGS, SETTINGS.resampling(passages.index))
    row = alignment.set_index("statistic").loc["pearson:ft_gain~cot_gain:models"]
    half = 1.959964 / 2  # Fisher z with 7 models: atanh(r) +- z / sqrt(7 - 3)
    assert (row.ci_low, row.ci_high) == pytest.approx(
        (np.tanh(np.arctanh(row.estimate) - half), np.tanh(np.arctanh(row.estimate) + half))
    )
    note = notes.set_index("effect").loc["pearson:ft_gain~cot_gain:models", "note"]
    assert (
        "power with 7 models: a two-sided test at 0.05 detects a correlation of 0.89 with 80% power and "
        "one of 0.5 with 20% power" in note
    )


def test_rounding_left_by_float_sums_is_zero_not_a_direction():
    """A knowledge part that is exactly 0 in some resamples came out as -6.9e-18 at the
    top of its interval (weights of 1/3 summed in floats), and summary.md called the
    interval [-16.3, -0.0] "a loss" and the readings in disagreement."""
    from xlt.report import _direction
    from xlt.stats.effects import Row, row_tables
    from xlt.stattests import percentile_interval

    draws = np.concatenate([np.linspace(-0.2, -0.01, 500), np.full(500, -6.9e-18)])
    assert percentile_interval(draws, 0.95)[1] == 0.0
    assert percentile_interval(draws + 1e-9, 0.95)[1] == pytest.approx(1e-9)  # a real value stays
    effects, _ = row_tables([Row("m", "direct", "gain", -6.9e-18, 10, "", -0.163, -6.9e-18)])
    row = effects.iloc[0]
    assert (row["estimate"], row["ci_high"]) == (0.0, 0.0) and row["ci_low"] == -0.163
    assert _direction(row) == "no detectable change"


def test_the_too_few_note_counts_one_unit_in_the_singular():
    from xlt.stats.notes import too_few_note
    from xlt.stattests import Resampling

    assert too_few_note(Resampling.draw(np.zeros(5, dtype=int), 10, 0.95, 0)).startswith(
        "no interval: 1 passage, fewer than the 6"
    )
    assert too_few_note(Resampling.draw(np.zeros(1, dtype=int), 10, 0.95, 0)).startswith("no interval: 1 item, fewer")
    assert too_few_note(Resampling.draw(np.arange(3), 10, 0.95, 0)).startswith("no interval: 3 items, fewer")
