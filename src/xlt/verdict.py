"""Plain-language verdicts from effects.csv: whether a related-language advantage was
found, ruled out beyond the equivalence margin, or neither, with the numbers that say
so. A null is stated with its bound ("no advantage larger than 5 points"), never as
the mere absence of significance."""

from __future__ import annotations

import math

import pandas as pd

SUBJECTS = {"relatedness": "fine-tuning", "cot_relatedness": "chain-of-thought"}


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


def verdict(effects: pd.DataFrame, model: str, prompt: str, margin: float, effect: str = "relatedness", alpha: float = 0.05) -> str:
    """One sentence on `effect` (a difference in differences: gain on related targets
    minus gain on controls) for one model and prompt."""
    rows = effects[(effects["model"] == model) & (effects["prompt"] == prompt)].set_index("effect")
    head = f"{model} ({prompt} prompt, {SUBJECTS.get(effect, effect)} gain)"
    if effect not in rows.index:
        return f"{head}: no estimate (a language group or cell is missing)."
    r = rows.loc[effect]
    bound = f"{100 * margin:g} points"
    difference = f"difference {_points(r.estimate)} points, CI {_points(r.ci_low)} to {_points(r.ci_high)}"
    equivalent = r.equivalence_p < alpha
    different = r.p_adjusted < alpha
    side = "advantage" if r.estimate > 0 else "disadvantage"
    if equivalent and different:
        text = f"a related-language {side} smaller than {bound} ({difference}; Holm p={r.p_adjusted:.3g}, TOST p={r.equivalence_p:.3g})"
    elif equivalent:
        text = f"no related-language advantage larger than {bound} (TOST p={r.equivalence_p:.3g}; {difference})"
    elif different:
        text = f"a related-language {side} ({difference}; Holm p={r.p_adjusted:.3g}), not shown smaller than {bound} (TOST p={r.equivalence_p:.3g})"
    else:
        equivalence = f"TOST p={r.equivalence_p:.3g}" if math.isfinite(r.equivalence_p) else "no equivalence test"
        text = f"inconclusive: {difference}; neither different from zero (Holm p={r.p_adjusted:.3g}) nor shown smaller than {bound} ({equivalence}); " + (
            f"advantages up to {100 * max(r.ci_high, 0):.1f} points remain possible"
            if r.ci_high > r.ci_low
            else "every item shows the same difference, so the data cannot bound it"
        )
    mde = rows["estimate"].get(f"{effect}_mde", math.nan)
    power = f" With {int(r.n_items)} items an advantage of {100 * mde:.1f} points is detected with 80% power." if math.isfinite(mde) else ""
    return f"{head}: {text}.{power}"
