"""gains.csv: each comparison's gain per model and language, for the report's plots."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..languages import Language
from ..paths import GAINS_COLUMNS
from ..stattests import Resampling
from .cells import COMPARISONS, ModelCells
from .effects import bootstrap_interval, without_headroom_note
from .notes import notes_frame, notes_row
from .settings import StatsSettings


def gains_table(
    cells: dict[str, ModelCells], languages: dict[str, Language], settings: StatsSettings, resampling: Resampling
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per model and language: each comparison's gain and its headroom-normalised form,
    with bootstrap intervals (for the report's per-language plots); and notes.csv's rows
    for the intervals that are NaN because every resample gives one value (the two cells
    agree on every item: effects.bootstrap_interval) or leave out resamples in which the
    language is at 100% before (no normalised gain), named `<gain>_<lang>`."""
    rows, notes = [], []
    for model, model_cells in cells.items():
        accuracy, draws = model_cells.values.mean(axis=0), resampling.means(model_cells.values)
        for comparison in COMPARISONS:
            for code in model_cells.langs(comparison, languages):
                weights = model_cells.gain_weights(comparison, [code])
                low, high, why = bootstrap_interval(resampling, draws @ weights)
                normalised_draws = model_cells.normalised_gain(draws, comparison, [code])
                norm_low, norm_high, norm_why = bootstrap_interval(resampling, normalised_draws, normalised=True)
                gaps = [f"gain: {why}"] if why else []
                gaps += [f"normalised gain: {norm_why}"] if norm_why else []
                # As effects.normalised_effect says on its rows: the interval is over the
                # resamples in which the language has headroom only.
                before = float(accuracy[model_cells.columns[(*comparison.before, code)]])
                without_headroom = without_headroom_note(normalised_draws, "the language")
                if without_headroom and before < 1 and np.isfinite(norm_low):
                    gaps.append(f"normalised gain: {without_headroom}")
                if gaps:
                    name = f"{comparison.gain}_{code}"
                    notes.append(
                        notes_row("gains", name, "; ".join(gaps), model=model, prompt=comparison.prompt, role="")
                    )
                lang = languages[code]
                rows.append(
                    {
                        "model": model,
                        "lang": code,
                        "group": lang.group,
                        "family": lang.family,
                        "script": lang.script,
                        "gain": comparison.gain,
                        "prompt": comparison.prompt,
                        "before": float(accuracy[model_cells.columns[(*comparison.before, code)]]),
                        "after": float(accuracy[model_cells.columns[(*comparison.after, code)]]),
                        "estimate": float(accuracy @ weights),
                        "ci_low": low,
                        "ci_high": high,
                        "normalised": float(model_cells.normalised_gain(accuracy, comparison, [code])),
                        "normalised_ci_low": norm_low,
                        "normalised_ci_high": norm_high,
                        "n_items": model_cells.values.shape[0],
                    }
                )
    return pd.DataFrame(rows, columns=list(GAINS_COLUMNS)), notes_frame(notes)
