"""Plain-language verdicts from effects.csv: whether a related-language advantage (or
whatever the row measures: a gain in one language, a slope on proximity) was found,
ruled out beyond the equivalence margin, or neither, with the numbers that say so. A null
is stated with its bound ("no advantage larger than 5 points") and the interval the
equivalence test corresponds to, never as the mere absence of significance. The primary
test (`stats.primary`, Holm-adjusted across models for both its p-value and its TOST
p-value) carries the verdict; other rows are secondary."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from .paths import SOURCE_COLUMN
from .primary import INTERACTION
from .proximity import SLOPE
from .reasons import NO_INTERVAL, SAME_VALUE

SUBJECTS = {
    "relatedness": "fine-tuning",
    "cot_relatedness": "chain-of-thought",
    INTERACTION: "related-source minus unrelated-source fine-tuning",
}
# What a table without a `role` column (written before there was a declared primary
# test) is read as.
LEGACY_PRIMARY = ("direct", "relatedness")
# The gain an effect's name starts with (xlt.stats.cells.COMPARISONS): its `gain` of a
# group, or its `prefix` of a language's McNemar test.
GAIN_NAMES = {"ft_gain_": "fine-tuning", "cot_gain_": "chain-of-thought", "": "fine-tuning", "cot_": "chain-of-thought"}
GROUP_NAMES = {"source": "the source language", "related": "the related targets", "control": "the controls"}
# The suffix of a difference in differences tested by relabelling the target languages
# (xlt.stats.relatedness._permutation_row): a p-value, never an interval.
PERMUTATION = "_permutation"
# The script contrasts (xlt.stats.relatedness._script_rows): what each subtracts from what,
# and what its positive value is.
SCRIPT_CONTRASTS = {
    "same_family": ("related minus control targets, all outside the source's script", "related-language"),
    "same_script": ("controls in the source's script minus controls in others", "same-script"),
}


@dataclass(frozen=True)
class Wording:
    """How a verdict words one effect: what its estimate is called, what a positive or
    negative value of it is, its unit (`scale` x the estimate: 100 for points) and its
    equivalence margin (None where the row has no TOST: a log odds ratio)."""

    subject: str
    measure: str
    positive: str
    negative: str
    plural: str
    unit: str
    margin: float | None
    scale: float = 100.0

    def shown(self, value: float) -> str:
        return f"{self.scale * value:+.{1 if self.scale == 100 else 3}f}"


def wording(effect: str, margin: float, proximity_margin: float) -> Wording:
    """The Wording of `effect`: a difference in differences (the related-language
    advantage), the slope of the gain on proximity (xlt.stats.proximity, tested against
    `proximity_margin`), or a gain in one language or group alone (no controls subtracted)."""
    if effect == SLOPE:
        return Wording(
            "slope of the fine-tuning gain on genealogical proximity",
            "slope",
            "positive proximity slope",
            "negative proximity slope",
            "slopes",
            "points per unit of proximity",
            proximity_margin,
        )
    single = re.fullmatch(r"(cot_|)mcnemar_(\w+)", effect) or re.fullmatch(
        r"(ft_gain_|cot_gain_)(source|related|control)", effect
    )
    script = re.fullmatch(r"(cot_|)(same_family|same_script)(_gee|)", effect)
    if script:
        gain, (contrast, advantage) = GAIN_NAMES[script.group(1)], SCRIPT_CONTRASTS[script.group(2)]
        subject = f"{gain} gain, {contrast}"
    else:
        base = effect.removesuffix("_gee").removesuffix(PERMUTATION)
        subject, advantage = f"{SUBJECTS.get(base, base)} gain", "related-language"
        if effect.endswith(PERMUTATION):
            subject += ", tested by permuting the related/control labels over the target languages"
    if effect.endswith("_gee"):
        # xlt.stats.relatedness: the binomial GEE's interaction coefficient, no TOST
        return Wording(
            f"{subject} as a log odds ratio (binomial GEE)",
            "log odds ratio",
            f"{advantage} advantage",
            f"{advantage} disadvantage",
            "log odds ratios",
            "",
            None,
            scale=1.0,
        )
    if single:
        gain, where = GAIN_NAMES[single.group(1)], GROUP_NAMES.get(single.group(2), single.group(2))
        return Wording(
            f"{gain} gain in {where} alone, no controls subtracted",
            "gain",
            f"{gain} gain in {where}",
            f"{gain} loss in {where}",
            "gains",
            "points",
            margin,
        )
    return Wording(
        subject,
        "difference",
        f"{advantage} advantage",
        f"{advantage} disadvantage",
        "advantages",
        "points",
        margin,
    )


def primary_of(effects: pd.DataFrame) -> tuple[str, str] | None:
    """(prompt, effect) of the primary rows of effects.csv; None where every row is
    secondary (one source's rows, where the interaction of several is the primary test)."""
    if "role" not in effects:
        return LEGACY_PRIMARY
    chosen = effects[effects["role"] == "primary"]
    return (str(chosen["prompt"].iloc[0]), str(chosen["effect"].iloc[0])) if len(chosen) else None


def holm_name(effect: str, primary: bool) -> str:
    """The family the row's p_adjusted was computed in: the primary test, and the
    interaction under every prompt (xlt.stats.sources.interaction_rows), across models;
    any other row among its model and prompt's secondary tests (xlt.stats.compare)."""
    return "Holm p across models" if primary or effect == INTERACTION else "Holm p among this model's secondary tests"


def note_part(notes: pd.DataFrame | None, row: dict, opening: str) -> str:
    """The part of the notes.csv row of effects.csv's `row` (its model, prompt, effect, and
    source where both carry one) that opens with `opening` (xlt.reasons), without it; ""
    where notes.csv is not given or says nothing of the kind."""
    if notes is None:
        return ""
    own = (
        (notes["table"] == "effects")
        & (notes["model"] == row["model"])
        & (notes["prompt"] == row["prompt"])
        & (notes["effect"] == row["effect"])
    )
    if SOURCE_COLUMN in row and SOURCE_COLUMN in notes.columns:
        # effects.csv leaves the source of the rows across sources empty (NaN once read)
        source = row[SOURCE_COLUMN] if isinstance(row[SOURCE_COLUMN], str) else ""
        own &= notes[SOURCE_COLUMN].fillna("") == source
    parts = [part for note in notes.loc[own, "note"].astype(str) for part in note.split("; ")]
    return next((part.removeprefix(opening) for part in parts if part.startswith(opening)), "")


def unbounded_reason(notes: pd.DataFrame | None, model: str, prompt: str, effect: str) -> str:
    """Why the row has no interval, in the words of its notes.csv row: every item the
    same, or too few passages for one; "" where notes.csv is not given or says nothing."""
    reason = note_part(notes, {"model": model, "prompt": prompt, "effect": effect}, NO_INTERVAL)
    if not reason:
        return ""
    if reason.startswith(SAME_VALUE):
        return "every item shows the same difference, so the data cannot bound it"
    return f"the data cannot bound it: {reason}"


def interval_against_test(r: dict, alpha: float) -> str:
    """Why the row's interval excludes zero where its Holm p does not reject, or "" where
    they agree: neither the interval nor the unadjusted p is adjusted for the other tests
    of the Holm family, or, where the unadjusted p does not reject either, the percentile
    bootstrap over few items or passages is narrower than the exact or permutation test
    (the default run has rows with an interval of +6 to +50 points beside McNemar's p=0.125)."""
    excludes_zero = r["ci_low"] > 0 or r["ci_high"] < 0
    if not excludes_zero or not math.isfinite(r["p_value"]):
        return ""
    unadjusted = f"unadjusted p={r['p_value']:.3g}"
    if r["p_value"] < alpha:
        return (
            f"; its interval excludes zero, as its {unadjusted} does, but neither is adjusted for the other "
            "tests of its Holm family"
        )
    return (
        f"; its interval excludes zero where its test does not reject ({unadjusted}): a percentile "
        "bootstrap over few items or passages is narrower than the test, which is the one to read"
    )


def verdict(
    effects: pd.DataFrame,
    model: str,
    prompt: str,
    margin: float,
    effect: str = "relatedness",
    *,
    alpha: float,
    proximity_margin: float,
    notes: pd.DataFrame | None = None,
) -> str:
    """One sentence on `effect` for one model and prompt, worded for what the row
    measures (wording). `notes`: the same rows' notes.csv, which says why an interval is
    missing; `proximity_margin`: the slope's TOST margin (stats.proximity_margin)."""
    rows = effects[(effects["model"] == model) & (effects["prompt"] == prompt)].set_index("effect")
    primary = (prompt, effect) == primary_of(effects)
    words = wording(effect, margin, proximity_margin)
    head = f"{model} ({'primary test' if primary else 'secondary'}: {prompt} prompt, {words.subject})"
    # The effect's row as a plain dict: its values are numbers, its columns fixed.
    r = rows.loc[effect].to_dict() if effect in rows.index else {}
    if not r or not math.isfinite(r["estimate"]):
        return f"{head}: no estimate (a language group or cell is missing)."
    tost = r.get("equivalence_p_adjusted", math.nan)
    tost_name = "Holm-adjusted TOST p" if primary and math.isfinite(tost) else "TOST p"
    tost = tost if primary and math.isfinite(tost) else r["equivalence_p"]
    holm = f"{holm_name(effect, primary)}={r['p_adjusted']:.3g}"
    bound = f"{100 * words.margin:g} {words.unit}" if words.margin is not None else ""
    smaller = f"shown smaller than {bound}" if bound else "tested for equivalence (no margin on this scale)"
    bounded = math.isfinite(r["ci_low"]) and math.isfinite(r["ci_high"])
    interval = f"CI {words.shown(r['ci_low'])} to {words.shown(r['ci_high'])}" if bounded else "no interval"
    difference = f"{words.measure} {words.shown(r['estimate'])}{' ' + words.unit if words.unit else ''}, {interval}"
    low, high = r.get("equivalence_ci_low", math.nan), r.get("equivalence_ci_high", math.nan)
    band = (
        f"{1 - 2 * alpha:.0%} interval {words.shown(low)} to {words.shown(high)}"
        if math.isfinite(low) and math.isfinite(high)
        else ""
    )
    equivalence = (
        f"{tost_name}={tost:.3g}" + (f", the TOST's {band}" if band else "")
        if math.isfinite(tost)
        else "no equivalence test"
    )
    equivalent = tost < alpha
    different = r["p_adjusted"] < alpha
    side = words.positive if r["estimate"] > 0 else words.negative
    if equivalent and different:
        text = f"a {side} smaller than {bound} ({difference}; {holm}; {equivalence})"
    elif equivalent:
        text = f"no {words.positive} larger than {bound} ({equivalence}; {difference}){interval_against_test(r, alpha)}"
    elif different:
        text = f"a {side} ({difference}; {holm}), not {smaller} ({equivalence})"
    else:
        possible = (
            f"{words.plural} up to {words.shown(max(r['ci_high'], 0)).lstrip('+')}"
            f"{' ' + words.unit if words.unit else ''} remain possible"
            if bounded
            else unbounded_reason(notes, model, prompt, effect)
            or ("a permutation test gives a p-value, not an interval" if effect.endswith(PERMUTATION) else "")
            or "no interval bounds it"
        )
        text = (
            f"inconclusive: {difference}; neither different from zero ({holm}) "
            f"nor {smaller} ({equivalence}); {possible}{interval_against_test(r, alpha)}"
        )
    mde = rows["estimate"].get(f"{effect}_mde", math.nan)
    power = (
        f" With {int(r['n_items'])} items an advantage of {100 * mde:.1f} points is detected with 80% power."
        if math.isfinite(mde)
        else ""
    )
    return f"{head}: {text}.{power}"
