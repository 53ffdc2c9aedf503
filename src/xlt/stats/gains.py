"""gains.csv: each comparison's gain per model and language, for the report's plots."""

from __future__ import annotations

import pandas as pd

from ..languages import Language
from ..paths import GAINS_COLUMNS
from ..stattests import Resampling
from .cells import COMPARISONS, ModelCells
from .settings import StatsSettings


def gains_table(
    cells: dict[str, ModelCells], languages: dict[str, Language], settings: StatsSettings, resampling: Resampling
) -> pd.DataFrame:
    """Per model and language: each comparison's gain and its headroom-normalised form,
    with bootstrap intervals (for the report's per-language plots)."""
    rows = []
    for model, model_cells in cells.items():
        accuracy, draws = model_cells.values.mean(axis=0), resampling.means(model_cells.values)
        for comparison in COMPARISONS:
            for code in model_cells.langs(comparison, languages):
                weights = model_cells.gain_weights(comparison, [code])
                low, high = resampling.interval(draws @ weights)
                norm_low, norm_high = resampling.interval(model_cells.normalised_gain(draws, comparison, [code]))
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
    return pd.DataFrame(rows, columns=list(GAINS_COLUMNS))
