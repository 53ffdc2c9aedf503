"""One row of effects.csv and the two ways most rows are computed: an accuracy-scale
effect (a weighted sum of cells: bootstrap interval, sign-flip or McNemar p, TOST) and
its headroom-normalised form (bootstrap interval only)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..paths import EFFECTS_COLUMNS
from ..reasons import NO_INTERVAL, SAME_VALUE
from ..stattests import (
    ROUNDING,
    Resampling,
    equivalence_interval,
    equivalence_p,
    mcnemar_p,
    sign_flip_p,
    without_rounding,
)
from .cells import ModelCells
from .notes import interval_method, notes_frame, notes_row, unit_name
from .settings import StatsSettings


@dataclass
class Row:
    """One row of effects.csv, with how it was computed and any reason for a gap."""

    model: str
    prompt: str
    effect: str
    estimate: float
    n_items: int
    method: str
    ci_low: float = math.nan
    ci_high: float = math.nan
    p_value: float = math.nan
    p_adjusted: float = math.nan
    equivalence_p: float = math.nan
    role: str = "secondary"
    equivalence_p_adjusted: float = math.nan
    equivalence_ci_low: float = math.nan
    equivalence_ci_high: float = math.nan
    holm_family: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelContext:
    model: str
    cells: ModelCells
    draws: np.ndarray  # bootstrap resamples x cells: cell accuracies
    resampling: Resampling
    settings: StatsSettings

    @classmethod
    def build(cls, model: str, cells: ModelCells, resampling: Resampling, settings: StatsSettings) -> ModelContext:
        return cls(model, cells, resampling.means(cells.values), resampling, settings)

    @property
    def n_items(self) -> int:
        return self.cells.values.shape[0]

    @property
    def clusters(self) -> np.ndarray:
        return self.resampling.clusters


def bootstrap_interval(resampling: Resampling, draws: np.ndarray, normalised: bool = False) -> tuple[float, float, str]:
    """The bootstrap interval of a statistic from its resampled values, and "" or why
    there is none. NaN where the clusters are too few (compare notes it once), and where
    every resample gives the same value: the cells compared agree on every item (a
    fine-tuned CoT cell that never answers, against its control), so the interval would
    be zero-width, a precision that the spread of the items does not show. `normalised`:
    the draws are headroom-normalised gains, which are +1 in every resample wherever the
    language(s) are at 100% after the change, whatever the items before it."""
    finite = draws[np.isfinite(draws)]
    if not resampling.too_few and finite.size and np.ptp(finite) <= ROUNDING:
        because = (
            "every language compared is at 100% after the change, so its normalised gain is +1 wherever it is defined"
            if normalised and abs(finite[0] - 1) <= ROUNDING
            else "the items, or the passages, all have one value: as where the cells compared agree on every item"
        )
        why = (
            f"{NO_INTERVAL}{SAME_VALUE} {finite[0]:+.3f} ({because}), and a zero-width interval would "
            "claim a precision they do not show"
        )
        return math.nan, math.nan, why
    low, high = resampling.interval(draws)
    return low, high, ""


def accuracy_effect(context: ModelContext, prompt: str, name: str, weights: np.ndarray, test: str = "sign-flip") -> Row:
    """An accuracy-scale effect (a weighted sum of cells): bootstrap interval, passage
    sign-flip p-value (or, for one language, exact McNemar when every passage has one
    question, a passage sign-flip when some have more) and the TOST p-value."""
    values = context.cells.values @ weights
    settings = context.settings
    low, high, no_interval = bootstrap_interval(context.resampling, context.draws @ weights)
    if test == "mcnemar" and context.resampling.singletons:
        after, before = np.flatnonzero(weights > 0)[0], np.flatnonzero(weights < 0)[0]
        p = mcnemar_p(context.cells.values[:, before], context.cells.values[:, after])
        test_text = "exact McNemar"
    else:
        p = sign_flip_p(values, context.resampling.signs)
        unit = "item" if context.resampling.singletons else "passage"
        test_text = f"{unit} sign-flip ({context.resampling.signs.shape[0]} flips)" + (
            " (McNemar's test with passages as clusters)" if test == "mcnemar" else ""
        )
    margin = settings.equivalence_margin
    scale = (float(weights[weights < 0].sum()), float(weights[weights > 0].sum()))
    # Below minimum_clusters the TOST goes with the interval: an empirical-likelihood
    # p-value on a few passages is anti-conservative, and "equivalent" would rest on them.
    too_few = context.resampling.too_few
    tost_low, tost_high = (
        (math.nan, math.nan) if too_few else equivalence_interval(values, settings.alpha, *scale, context.clusters)
    )
    tost_p = math.nan if too_few else equivalence_p(values, margin, *scale, context.clusters)
    row = Row(
        context.model,
        prompt,
        name,
        float(values.mean()),
        context.n_items,
        f"{interval_method(settings, context.resampling)}; p: {test_text}; equivalence_p: "
        f"empirical-likelihood TOST over {unit_name(context.resampling)}, "
        f"margin ±{margin:g}, equivalent at {settings.alpha:g} when its {1 - 2 * settings.alpha:.0%} "
        "interval (equivalence_ci_*) lies inside",
        low,
        high,
        p,
        equivalence_p=tost_p,
        equivalence_ci_low=tost_low,
        equivalence_ci_high=tost_high,
    )
    if no_interval:
        # The TOST's interval is as wide as the items' spread: none, so its "equivalent"
        # would rest on the number of items alone. The p-value stands (flipping the signs
        # of a constant: 1 where it is 0).
        row.equivalence_p = row.equivalence_ci_low = row.equivalence_ci_high = math.nan
        row.notes.append(f"{no_interval}; no TOST: equivalence cannot rest on items that all agree")
    return row


def normalised_effect(context: ModelContext, prompt: str, name: str, statistic, raw_name: str) -> Row:
    """A headroom-normalised gain (or difference of them): bootstrap interval only, as
    its test is the accuracy-scale effect `raw_name`."""
    estimate = float(statistic(context.cells.values.mean(axis=0)))
    draws = statistic(context.draws)
    low, high, no_interval = bootstrap_interval(context.resampling, draws, normalised=True)
    row = Row(
        context.model,
        prompt,
        name,
        estimate,
        context.n_items,
        f"{interval_method(context.settings, context.resampling)}; tested on the accuracy scale as {raw_name}",
        low,
        high,
    )
    if no_interval:
        row.notes.append(no_interval)
    if not np.isfinite(estimate):
        row.notes.append("a language is at 100% before the change: no headroom to normalise by")
    elif without_headroom := without_headroom_note(draws, "a language"):
        row.notes.append(without_headroom)
    return row


def without_headroom_note(draws: np.ndarray, subject: str) -> str:
    """How many resamples of a normalised gain have `subject` (the language, or a language
    of a group) at 100% before the change, so no gain, and are left out of the interval;
    "" where none."""
    undefined = float(np.mean(~np.isfinite(draws)))
    if not undefined:
        return ""
    return f"{undefined:.1%} of resamples have {subject} at 100% before the change and are left out of the interval"


def row_tables(rows: list[Row]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows as effects.csv's rows and their notes.csv rows (method, Holm family, notes)."""
    effects = pd.DataFrame(
        [{column: getattr(row, column) for column in EFFECTS_COLUMNS} for row in rows], columns=list(EFFECTS_COLUMNS)
    )
    for column in ("estimate", "ci_low", "ci_high", "equivalence_ci_low", "equivalence_ci_high"):
        effects[column] = effects[column].map(without_rounding)
    notes = notes_frame(
        [
            notes_row(
                "effects",
                row.effect,
                "; ".join(row.notes),
                model=row.model,
                prompt=row.prompt,
                method=row.method,
                holm_family=row.holm_family,
                role=row.role,
            )
            for row in rows
        ]
    )
    return effects, notes
