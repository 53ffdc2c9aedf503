"""The words of notes.csv: one helper for a notes row, and the texts several tables share
(the resampling unit, the interval's method, why there is no interval)."""

from __future__ import annotations

import pandas as pd

from ..paths import NOTES_COLUMNS
from ..reasons import BOOTSTRAP_OVER, NO_INTERVAL
from ..stattests import Resampling, minimum_clusters
from .settings import StatsSettings


def notes_row(
    table: str,
    effect: str = "",
    note: str = "",
    *,
    model: str = "",
    prompt: str = "",
    method: str = "",
    holm_family: str = "",
    role: str = "secondary",
) -> dict:
    """One row of notes.csv: how a row of `table` was computed (`method`, `holm_family`)
    and why it has a gap (`note`); `effect` names the row (or the rows, with wildcards)."""
    return {
        "table": table,
        "model": model,
        "prompt": prompt,
        "effect": effect,
        "method": method,
        "holm_family": holm_family,
        "note": note,
        "role": role,
    }


def notes_frame(rows: list[dict]) -> pd.DataFrame:
    """notes_row rows as a notes.csv table, its columns in order even when there are none."""
    return pd.DataFrame(rows, columns=list(NOTES_COLUMNS))


def unit_name(resampling: Resampling) -> str:
    """What is resampled: passages, or items where no id carries a passage key."""
    return "items" if resampling.singletons else "passages"


def interval_method(settings: StatsSettings, resampling: Resampling) -> str:
    return (
        f"{settings.confidence:.0%} expanded percentile {BOOTSTRAP_OVER}{unit_name(resampling)} "
        f"({settings.bootstrap_samples} resamples)"
    )


def too_few_note(resampling: Resampling) -> str:
    """Why every interval of a comparison is NaN where its passages are too few for one
    (stattests.minimum_clusters), else ""."""
    if not resampling.too_few:
        return ""
    confidence, n = resampling.confidence, resampling.n_clusters
    units = unit_name(resampling) if n != 1 else unit_name(resampling).removesuffix("s")
    return (
        f"{NO_INTERVAL}{n} {units}, fewer than the "
        f"{minimum_clusters(confidence)} a {confidence:.0%} interval needs "
        f"(no two-sided test at {1 - confidence:g} can reject on fewer)"
    )
