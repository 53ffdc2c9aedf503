"""alignment.csv: across models, does the fine-tuning gain go with the CoT gain, and
with a weak baseline? Per model (the study's unit) and per model x target language."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..languages import Language
from ..paths import ALIGNMENT_COLUMNS, CHOICE_PROMPT
from ..stattests import (
    Resampling,
    bootstrap_p,
    correlation,
    correlation_power,
    detectable_correlation,
    fisher_gap,
    fisher_interval,
    perfect_correlation,
    permutation_p,
    unit_permutations,
)
from .cells import COT, FT_DIRECT, FT_DIRECT_CHOICE, ModelCells
from .notes import interval_method, notes_frame, notes_row, unit_name
from .settings import StatsSettings

ALIGNMENT_CELLS = (("base", "direct"), ("ft", "direct"), ("base", "cot"))


@dataclass(frozen=True)
class Unit:
    """A point of the across-model correlations: one model, over all its target
    languages or over one of them."""

    model: str
    cells: ModelCells
    codes: list[str]

    def quantities(self, accuracy: np.ndarray) -> dict[str, np.ndarray]:
        """Baseline and gains from cell accuracies (last axis)."""
        cells, codes = self.cells, self.codes
        return {
            "baseline": accuracy[..., [cells.columns[("base", "direct", code)] for code in codes]].mean(axis=-1),
            "ft_gain": accuracy @ cells.gain_weights(FT_DIRECT, codes),
            "cot_gain": accuracy @ cells.gain_weights(COT, codes),
            "ft_gain_norm": cells.normalised_gain(accuracy, FT_DIRECT, codes),
            "cot_gain_norm": cells.normalised_gain(accuracy, COT, codes),
            "ft_gain_format": accuracy
            @ (cells.gain_weights(FT_DIRECT, codes) - cells.gain_weights(FT_DIRECT_CHOICE, codes))
            if self.has_choice
            else np.full(accuracy.shape[:-1], np.nan),
        }

    @property
    def has_choice(self) -> bool:
        return all(
            (variant, CHOICE_PROMPT, code) in self.cells.columns for variant in ("base", "ft") for code in self.codes
        )


ALIGNMENT_PAIRS = (
    ("ft_gain", "cot_gain"),
    ("ft_gain_norm", "cot_gain_norm"),
    ("baseline", "ft_gain"),
    ("baseline", "ft_gain_norm"),
    ("baseline", "cot_gain"),
    ("baseline", "cot_gain_norm"),
    ("ft_gain_format", "cot_gain"),
)
# Pairs that share a measurement (both gains subtract base/direct; a gain subtracts the
# baseline), so item noise alone correlates them (regression to the mean): also
# estimated with x and y measured on disjoint halves of the items, which that shared
# noise cannot reach.
SPLIT_PAIRS = (
    ("ft_gain", "cot_gain"),
    ("baseline", "ft_gain"),
    ("baseline", "cot_gain"),
    ("ft_gain_format", "cot_gain"),
)
# Disjoint halves remove the shared cell's noise, not a true difference in it: a model
# that is truly bad at letter-only answers (base/direct) has both gains truly larger,
# which no correlation of these two gains can tell from alignment.
CORRELATION_OF_INTEREST = 0.5  # notes.csv states the power of the models unit against it


def alignment_units(cells: dict[str, ModelCells], languages: dict[str, Language]) -> dict[str, list[Unit]]:
    targets = [code for code, lang in languages.items() if lang.is_target]
    units: dict[str, list[Unit]] = {"models": [], "model_language": []}
    for model, model_cells in cells.items():
        codes = [code for code in targets if all((*cell, code) in model_cells.columns for cell in ALIGNMENT_CELLS)]
        if codes:
            units["models"].append(Unit(model, model_cells, codes))
            units["model_language"] += [Unit(model, model_cells, [code]) for code in codes]
    return units


def _stacked(members: list[Unit], accuracy_of) -> dict[str, np.ndarray]:
    """Quantity -> array with the units on the last axis."""
    per_unit = [unit.quantities(accuracy_of(unit)) for unit in members]
    return {name: np.stack([q[name] for q in per_unit], axis=-1) for name in per_unit[0]}


def _half_means(values: np.ndarray, counts: np.ndarray, half: np.ndarray) -> np.ndarray:
    drawn = counts[:, half]
    with np.errstate(invalid="ignore", divide="ignore"):
        return drawn @ values[half] / drawn.sum(axis=1, keepdims=True)


def _pair_correlation(tables, x: str, y: str, method: str, order=slice(None)) -> np.ndarray:
    """corr(x, y) across units; from two half tables, the mean of corr(x on one half,
    y on the other) over both assignments. `order` permutes the units of x."""
    if isinstance(tables, tuple):
        first, second = tables
        return (
            correlation(first[x][..., order], second[y], method) + correlation(second[x][..., order], first[y], method)
        ) / 2
    return correlation(tables[x][..., order], tables[y], method)


def passage_halves(resampling: Resampling) -> tuple[np.ndarray, np.ndarray] | None:
    """The items of the even and of the odd passages (by position), or None where one half
    is empty (a single passage): a split statistic has no items to measure one side on."""
    halves = (resampling.clusters % 2 == 0, resampling.clusters % 2 == 1)
    return halves if all(half.any() for half in halves) else None


def _tables(members: list[Unit], resampling: Resampling) -> dict:
    """The quantities of `members` (units on the last axis) from the items, from each
    bootstrap resample, and, where there are two halves of the passages (even/odd
    positions), the same from each half."""
    tables: dict[str, dict | tuple] = {
        "estimates": _stacked(members, lambda unit: unit.cells.values.mean(axis=0)),
        "draws": _stacked(members, lambda unit: resampling.means(unit.cells.values)),
    }
    halves = passage_halves(resampling)
    if halves is None:
        return tables
    tables["split_estimates"] = tuple(
        _stacked(members, lambda unit, h=h: unit.cells.values[h].mean(axis=0)) for h in halves
    )
    tables["split_draws"] = tuple(
        _stacked(members, lambda unit, h=h: _half_means(unit.cells.values, resampling.counts, h)) for h in halves
    )
    return tables


def _correlation_row(
    tables: dict,
    pair: tuple[str, str, str],
    split: bool,
    orders,
    exact: bool,
    n: int,
    settings: StatsSettings,
    resampling: Resampling,
):
    """A correlation's estimate, interval and p (Fisher z and the permutation of the
    pairing where `orders` are given, else the bootstrap), and a note where it has none."""
    x, y, method = pair
    row = {"estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
    observed = tables["split_estimates" if split else "estimates"]
    value = float(_pair_correlation(observed, x, y, method))
    row["estimate"] = value
    if orders is None:
        boot = _pair_correlation(tables["split_draws" if split else "draws"], x, y, method)
        row["ci_low"], row["ci_high"] = resampling.interval(boot)
    else:
        row["ci_low"], row["ci_high"] = fisher_interval(value, n, settings.confidence, method)
    if not np.isfinite(value):
        return row, "a quantity does not vary across the points (or a headroom is zero): no correlation"
    if orders is not None:
        row["p_value"] = permutation_p(value, _pair_correlation(observed, x, y, method, orders), exact)
        # Too few models is said by the power note; a correlation of +-1 only here.
        return row, fisher_gap(value, n, method, units="models") if perfect_correlation(value) else ""
    row["p_value"] = bootstrap_p(boot)
    return row, ""


def _power_note(n: int, method: str, settings: StatsSettings) -> str:
    """What a test over `n` models can detect."""
    alpha = settings.alpha
    detectable = detectable_correlation(n, alpha, method=method)
    if not np.isfinite(detectable):
        return f"{n} models are too few for a Fisher-z interval or a power statement"
    power = correlation_power(n, CORRELATION_OF_INTEREST, alpha, method)
    return (
        f"power with {n} models: a two-sided test at {alpha:g} detects a correlation of {detectable:.2f} "
        "with 80% power "
        f"and one of {CORRELATION_OF_INTEREST:g} with {power:.0%} power"
    )


def _method_text(
    kind: str, n: int, orders, exact: bool, split: bool, settings: StatsSettings, resampling: Resampling
) -> str:
    """How a statistic over units of `kind` is computed, for its notes row."""
    if kind == "models":
        interval_text = f"{settings.confidence:.0%} Fisher-z interval over the {n} models"
        p_method = (
            "permutation of the pairing across models "
            f"({'exact, all ' if exact else ''}{len(orders) if orders is not None else 0} orderings)"
        )
    else:
        interval_text = interval_method(settings, resampling)
        p_method = (
            f"{unit_name(resampling)[:-1]} bootstrap (conditional on these models and languages: cells of one "
            "model are not independent)"
        )
    return f"{interval_text}; p: {p_method}" + (
        f"; x and y on disjoint halves of the {unit_name(resampling)} (even/odd positions), averaged over "
        "both assignments"
        if split
        else ""
    )


def _kind_rows(
    kind: str, members: list[Unit], n_models: int, settings: StatsSettings, resampling: Resampling
) -> tuple[list[dict], list[dict]]:
    """alignment.csv's rows over one kind of unit, and their notes rows."""
    enough = len(members) >= 3
    tables = _tables(members, resampling) if enough else {}
    orders, exact = unit_permutations(len(members), settings.seed) if kind == "models" and enough else (None, False)
    rows, notes = [], []
    for pairs, split in ((ALIGNMENT_PAIRS, False), (SPLIT_PAIRS, True)):
        for x, y in pairs:
            for method in ("pearson", "spearman"):
                statistic = f"{method}:{x}~{y}:{kind}" + (":split_items" if split else "")
                lacking = (
                    sorted({unit.model for unit in members if not unit.has_choice})
                    if "ft_gain_format" in (x, y)
                    else []
                )
                if lacking:
                    why = (
                        f"missing: no choice cell for {', '.join(lacking)}, so no format part of the "
                        "fine-tuning gain (older runs and predictions from elsewhere may lack it)"
                    )
                    notes.append(notes_row("alignment", statistic, why))
                    continue
                if enough and split and passage_halves(resampling) is None:
                    values = {"estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
                    note = (
                        f"no estimate: x and y on disjoint halves of the {unit_name(resampling)} need at least 2 "
                        f"{unit_name(resampling)}, the comparison has {resampling.n_clusters}"
                    )
                elif enough:
                    values, note = _correlation_row(
                        tables, (x, y, method), split, orders, exact, len(members), settings, resampling
                    )
                else:
                    values = {"estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
                    note = f"needs at least 3 points, has {len(members)}"
                if kind == "models" and enough:
                    note = "; ".join(part for part in (note, _power_note(len(members), method, settings)) if part)
                rows.append({"statistic": statistic, **values, "n_models": n_models})
                notes.append(
                    notes_row(
                        "alignment",
                        statistic,
                        note,
                        method=_method_text(kind, len(members), orders, exact, split, settings, resampling),
                    )
                )
    return rows, notes


def alignment_table(
    cells: dict[str, ModelCells], languages: dict[str, Language], settings: StatsSettings, resampling: Resampling
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Across models: does the fine-tuning gain go with the CoT gain, and with a weak
    baseline? Per model (the study's unit: interval from Fisher's z over the models, p
    from permuting the pairing of models, exact up to 8 models, and the power at this
    number of models in notes.csv) and per model x target language (more points, not
    independent within a model; interval and p from the passage bootstrap, conditional
    on these models)."""
    units = alignment_units(cells, languages)
    rows, notes = [], []
    for kind, members in units.items():
        found, written = _kind_rows(kind, members, len(units["models"]), settings, resampling)
        rows += found
        notes += written
    return pd.DataFrame(rows, columns=list(ALIGNMENT_COLUMNS)), notes_frame(notes)
