"""The verdict sentences name what the row they read measures, its unit and margin, the
Holm family its p_adjusted comes from, and the real reason an interval is missing."""

import math

import pandas as pd
import pytest

from xlt.paths import EFFECTS_COLUMNS
from xlt.primary import INTERACTION
from xlt.stats.notes import notes_frame, notes_row
from xlt.verdict import verdict

# the verdicts' level and the proximity slope's margin (the schema's defaults)
LEVELS = {"alpha": 0.05, "proximity_margin": 0.1}


def effects_row(effect: str, estimate: float, role: str, **values) -> pd.DataFrame:
    """One model's effects.csv with one row: an inconclusive one unless `values` say otherwise."""
    row = {
        "model": "m",
        "prompt": "direct",
        "effect": effect,
        "estimate": estimate,
        "ci_low": -0.2,
        "ci_high": 0.3,
        "p_value": 0.5,
        "p_adjusted": 0.5,
        "equivalence_p": 0.6,
        "n_items": 16,
        "role": role,
        "equivalence_p_adjusted": 0.6 if role == "primary" else math.nan,
        "equivalence_ci_low": -0.1,
        "equivalence_ci_high": 0.2,
        **values,
    }
    return pd.DataFrame([row], columns=list(EFFECTS_COLUMNS))


def test_the_secondary_interaction_names_its_holm_family_across_models():
    """xlt.stats.sources adjusts the interaction across models under every prompt, the
    secondary CoT one too: not among the model's secondary tests."""
    sentence = verdict(effects_row(INTERACTION, 0.02, "secondary"), "m", "direct", 0.05, INTERACTION, **LEVELS)
    assert "(Holm p across models=0.5)" in sentence
    assert "among this model's secondary tests" not in sentence


def test_a_primary_slope_is_read_in_its_unit_against_the_proximity_margin():
    effects = effects_row("proximity_slope", 0.043, "primary", p_adjusted=0.01, ci_low=0.01, ci_high=0.5)
    sentence = verdict(effects, "m", "direct", 0.05, "proximity_slope", **LEVELS)
    assert "(slope +4.3 points per unit of proximity, CI +1.0 to +50.0;" in sentence
    assert "a positive proximity slope (" in sentence
    assert "not shown smaller than 10 points per unit of proximity" in sentence
    assert "related-language" not in sentence and "5 points" not in sentence


@pytest.mark.parametrize(
    "effect, start",
    [
        (
            "mcnemar_heb_Hebr",
            "m (primary test: direct prompt, fine-tuning gain in heb_Hebr alone, no controls subtracted): "
            "a fine-tuning gain in heb_Hebr (gain +50.0 points, CI +18.8 to +75.0; Holm p across models=0.0156)",
        ),
        # controls in the source's script minus controls in others, all unrelated languages
        (
            "same_script",
            "m (primary test: direct prompt, fine-tuning gain, controls in the source's script minus controls in "
            "others): a same-script advantage (difference +50.0 points",
        ),
    ],
)
def test_a_primary_that_is_no_related_language_difference_is_not_called_a_related_language_advantage(effect, start):
    """stats.primary may name a gain in one language or a script contrast
    (xlt.stats.relatedness.effects_tested)."""
    effects = effects_row(effect, 0.5, "primary", p_adjusted=0.0156, ci_low=0.188, ci_high=0.75)
    sentence = verdict(effects, "m", "direct", 0.05, effect, **LEVELS)
    assert sentence.startswith(start)
    assert "related-language" not in sentence


def test_a_missing_interval_gives_the_reason_its_notes_give():
    effects = effects_row(INTERACTION, -0.021, "primary", ci_low=math.nan, ci_high=math.nan, equivalence_p=math.nan)
    too_few = (
        "no interval: 4 passages, fewer than the 6 a 95% interval needs (no two-sided test at 0.05 can reject on fewer)"
    )
    same = "no interval: every resample gives +0.000 (the items, or the passages, all have one value)"

    def sentence(note: str) -> str:
        notes = notes_frame([notes_row("effects", INTERACTION, note, model="m", prompt="direct")])
        return verdict(effects, "m", "direct", 0.05, INTERACTION, notes=notes, **LEVELS)

    assert sentence(f"{too_few}; related minus control").endswith(
        "the data cannot bound it: 4 passages, fewer than the 6 a 95% interval needs (no two-sided test at 0.05 "
        "can reject on fewer)."
    )
    assert "every item shows the same difference" not in sentence(too_few)
    assert sentence(same).endswith("every item shows the same difference, so the data cannot bound it.")


def test_a_primary_gee_coefficient_is_read_as_a_log_odds_ratio_without_a_margin():
    """The binomial GEE's relatedness coefficient is a log odds ratio with no TOST: it was
    printed as "+43.1 points" and "not shown smaller than 5 points"."""
    effects = effects_row(
        "relatedness_gee",
        0.431,
        "primary",
        p_adjusted=0.01,
        ci_low=0.12,
        ci_high=0.74,
        equivalence_p=math.nan,
        equivalence_p_adjusted=math.nan,
        equivalence_ci_low=math.nan,
        equivalence_ci_high=math.nan,
    )
    sentence = verdict(effects, "m", "direct", 0.05, "relatedness_gee", **LEVELS)
    assert "(log odds ratio +0.431, CI +0.120 to +0.740;" in sentence
    assert "not tested for equivalence (no margin on this scale) (no equivalence test)" in sentence
    assert "points" not in sentence


def test_an_interval_that_excludes_zero_beside_a_test_that_does_not_reject_says_why():
    """Secondary rows: the interval is not adjusted for the Holm family, and a percentile
    bootstrap over 16 items can exclude zero where McNemar's exact test does not."""
    adjusted = effects_row(
        "relatedness", 0.161, "secondary", ci_low=0.026, ci_high=0.276, p_value=0.0244, p_adjusted=0.317
    )
    sentence = verdict(adjusted, "m", "direct", 0.05, "relatedness", **LEVELS)
    assert sentence.startswith("m (secondary: direct prompt, fine-tuning gain): inconclusive:")
    assert "; its interval excludes zero, as its unadjusted p=0.0244 does, but neither is adjusted" in sentence
    exact = effects_row(
        "mcnemar_heb_Hebr", 0.25, "secondary", ci_low=0.0625, ci_high=0.5, p_value=0.125, p_adjusted=1.0
    )
    sentence = verdict(exact, "m", "direct", 0.05, "mcnemar_heb_Hebr", **LEVELS)
    assert "its interval excludes zero where its test does not reject (unadjusted p=0.125)" in sentence
    agreeing = effects_row("relatedness", 0.05, "secondary")
    assert "its interval excludes zero" not in verdict(agreeing, "m", "direct", 0.05, "relatedness", **LEVELS)


def test_the_script_contrasts_say_what_they_subtract():
    effects = effects_row(
        "cot_same_script_gee", -0.4, "secondary", prompt="cot", p_adjusted=0.01, ci_low=-0.7, ci_high=-0.1
    )
    sentence = verdict(effects, "m", "cot", 0.05, "cot_same_script_gee", **LEVELS)
    assert (
        "chain-of-thought gain, controls in the source's script minus controls in others as a log odds ratio"
        in sentence
    )
    assert "a same-script disadvantage (log odds ratio -0.400" in sentence
    effects = effects_row("same_family", 0.2, "primary", p_adjusted=0.01, ci_low=0.05, ci_high=0.35)
    sentence = verdict(effects, "m", "direct", 0.05, "same_family", **LEVELS)
    assert (
        "fine-tuning gain, related minus control targets, all outside the source's script): "
        "a related-language advantage (" in sentence
    )


def test_a_permutation_primary_names_its_test_and_why_it_has_no_interval():
    """stats.primary may name direct/relatedness_permutation: a p-value from relabelling
    the target languages, with no interval by design."""
    untested = {"ci_low": math.nan, "ci_high": math.nan, "equivalence_p": math.nan, "equivalence_p_adjusted": math.nan}
    effects = effects_row("relatedness_permutation", 0.115, "primary", p_value=0.086, p_adjusted=0.17, **untested)
    sentence = verdict(effects, "m", "direct", 0.05, "relatedness_permutation", **LEVELS)
    assert sentence.startswith(
        "m (primary test: direct prompt, fine-tuning gain, tested by permuting the related/control labels over the "
        "target languages): inconclusive: difference +11.5 points, no interval;"
    )
    assert sentence.endswith("; a permutation test gives a p-value, not an interval.")
