"""Plain-language verdicts from effects.csv: whether a related-language advantage was
found, ruled out beyond the equivalence margin, or neither, with the numbers that say
so. A null is stated with its bound ("no advantage larger than 5 points") and the
interval the equivalence test corresponds to, never as the mere absence of
significance. The primary test (`stats.primary`, Holm-adjusted across models for both
its p-value and its TOST p-value) carries the verdict; other rows are secondary."""

from __future__ import annotations

import math

import pandas as pd

from .primary import INTERACTION

SUBJECTS = {
    "relatedness": "fine-tuning",
    "cot_relatedness": "chain-of-thought",
    INTERACTION: "related-source minus unrelated-source fine-tuning",
}
# What a table without a `role` column (written before there was a declared primary
# test) is read as.
LEGACY_PRIMARY = ("direct", "relatedness")


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


def primary_of(effects: pd.DataFrame) -> tuple[str, str] | None:
    """(prompt, effect) of the primary rows of effects.csv; None where every row is
    secondary (one source's rows, where the interaction of several is the primary test)."""
    if "role" not in effects:
        return LEGACY_PRIMARY
    chosen = effects[effects["role"] == "primary"]
    return (str(chosen["prompt"].iloc[0]), str(chosen["effect"].iloc[0])) if len(chosen) else None


def verdict(
    effects: pd.DataFrame, model: str, prompt: str, margin: float, effect: str = "relatedness", alpha: float = 0.05
) -> str:
    """One sentence on `effect` (a difference in differences: gain on related targets
    minus gain on controls) for one model and prompt."""
    rows = effects[(effects["model"] == model) & (effects["prompt"] == prompt)].set_index("effect")
    primary = (prompt, effect) == primary_of(effects)
    head = (
        f"{model} ({'primary test' if primary else 'secondary'}: {prompt} prompt, {SUBJECTS.get(effect, effect)} gain)"
    )
    # The effect's row as a plain dict: its values are numbers, its columns fixed.
    r = rows.loc[effect].to_dict() if effect in rows.index else {}
    if not r or not math.isfinite(r["estimate"]):
        return f"{head}: no estimate (a language group or cell is missing)."
    tost = r.get("equivalence_p_adjusted", math.nan)
    tost_name = "Holm-adjusted TOST p" if primary and math.isfinite(tost) else "TOST p"
    tost = tost if primary and math.isfinite(tost) else r["equivalence_p"]
    holm_name = "Holm p across models" if primary else "Holm p among this model's secondary tests"
    bound = f"{100 * margin:g} points"
    interval = (
        f"CI {_points(r['ci_low'])} to {_points(r['ci_high'])}"
        if math.isfinite(r["ci_low"]) and math.isfinite(r["ci_high"])
        else "no interval"
    )
    difference = f"difference {_points(r['estimate'])} points, {interval}"
    low, high = r.get("equivalence_ci_low", math.nan), r.get("equivalence_ci_high", math.nan)
    band = (
        f"{1 - 2 * alpha:.0%} interval {_points(low)} to {_points(high)}"
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
    side = "advantage" if r["estimate"] > 0 else "disadvantage"
    if equivalent and different:
        text = (
            f"a related-language {side} smaller than {bound} ({difference}; "
            f"{holm_name}={r['p_adjusted']:.3g}; {equivalence})"
        )
    elif equivalent:
        text = f"no related-language advantage larger than {bound} ({equivalence}; {difference})"
    elif different:
        text = (
            f"a related-language {side} ({difference}; {holm_name}={r['p_adjusted']:.3g}), not shown smaller "
            f"than {bound} ({equivalence})"
        )
    else:
        text = (
            f"inconclusive: {difference}; neither different from zero ({holm_name}={r['p_adjusted']:.3g}) "
            f"nor shown smaller than {bound} ({equivalence}); "
            + (
                f"advantages up to {100 * max(r['ci_high'], 0):.1f} points remain possible"
                if r["ci_high"] > r["ci_low"]
                else "every item shows the same difference, so the data cannot bound it"
            )
        )
    mde = rows["estimate"].get(f"{effect}_mde", math.nan)
    power = (
        f" With {int(r['n_items'])} items an advantage of {100 * mde:.1f} points is detected with 80% power."
        if math.isfinite(mde)
        else ""
    )
    return f"{head}: {text}.{power}"
