"""One source's comparison: effects.csv (with the primary test and the Holm families),
alignment.csv, gains.csv and notes.csv from item-level predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..atomic import write_csv
from ..errors import XltError
from ..languages import Language
from ..paths import POOLED_MODEL as POOLED
from ..primary import AUTO_PRIMARY
from ..stattests import Resampling, holm
from .alignment import alignment_table
from .cells import COMPARISONS, DECOMPOSITIONS, ModelCells, correctness, with_debiased_cells, with_forced_cells
from .effects import ModelContext, Row, row_tables
from .gains import gains_table
from .knowledge import control_effects, decomposition_effects
from .notes import notes_frame, notes_row, too_few_note
from .relatedness import comparison_effects, effects_tested, pooled_effects
from .settings import StatsSettings


def primary_key(setting: str, languages: dict[str, Language]) -> tuple[str, str]:
    """The (prompt, effect) of `stats.primary` ("auto" or "prompt/effect") among one
    source's rows (the study-wide choice is xlt.primary's)."""
    if setting == "auto":
        return AUTO_PRIMARY[-1]
    prompt, _, effect = setting.partition("/")
    if (prompt, effect) not in effects_tested(languages):
        allowed = ", ".join(f"{p}/{e}" for p, e in effects_tested(languages))
        raise XltError(f"stats.primary: {setting!r} is not a test of this study; allowed: auto, {allowed}")
    return prompt, effect


def _adjust(rows: list[Row], primary: tuple[str, str] | None) -> None:
    """The primary test (one per model) carries the verdict: Holm across models over
    the primary tests only, for its p-value and, separately, its TOST p-value. Every
    other test is secondary: Holm within one model and prompt over its secondary tests,
    a guide to what stands out rather than a claim. `primary` None: every row is
    secondary (the primary test is elsewhere, as the interaction of several sources)."""
    if primary is not None:
        chosen = [row for row in rows if (row.prompt, row.effect) == primary and row.model != POOLED]
        tested = sum(np.isfinite(row.p_value) for row in chosen)
        for row, adjusted, equivalence in zip(
            chosen, holm([row.p_value for row in chosen]), holm([row.equivalence_p for row in chosen])
        ):
            row.role, row.p_adjusted, row.equivalence_p_adjusted = "primary", adjusted, equivalence
            row.holm_family = (
                f"primary: Holm across the {tested} models' {'/'.join(primary)} tests (p and TOST p adjusted "
                "separately)"
            )
    for key in sorted({(row.model, row.prompt) for row in rows}):
        family = [
            row
            for row in rows
            if (row.model, row.prompt) == key and row.role == "secondary" and np.isfinite(row.p_value)
        ]
        for row, adjusted in zip(family, holm([row.p_value for row in family])):
            row.p_adjusted = adjusted
            row.holm_family = f"secondary: Holm over the {len(family)} secondary p-values of {key[0]} / {key[1]}"


def effects_table(
    cells: dict[str, ModelCells],
    languages: dict[str, Language],
    settings: StatsSettings,
    resampling: Resampling,
    with_primary: bool = True,
    extra_rows: tuple = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """effects.csv and its notes (method, Holm family, reasons for gaps); with_primary
    False: every row secondary (compare). `extra_rows`: functions (ModelContext,
    languages) -> (rows, notes rows of what is missing) whose rows join the Holm
    families (xlt.stats.proximity.slope_rows, which is passed in: it imports the
    modules below this one)."""
    rows, controls, absent = [], [], []
    for model, model_cells in cells.items():
        context = ModelContext.build(model, model_cells, resampling, settings)
        for comparison in COMPARISONS:
            rows += comparison_effects(context, comparison, languages)
        totals = set()
        for reading in DECOMPOSITIONS:
            found, missing = decomposition_effects(context, reading, languages, with_total=reading.gain not in totals)
            totals |= {reading.gain} if found else set()
            rows += found
            absent += missing
        found, missing = control_effects(context, languages)
        controls += found
        absent += missing
        for extra in extra_rows:
            found, missing = extra(context, languages)
            rows += found
            absent += missing
    for comparison in COMPARISONS:
        rows += pooled_effects(cells, comparison, languages, settings, resampling)
    _adjust(rows, primary_key(settings.primary, languages) if with_primary else None)
    effects, notes = row_tables(rows + controls)
    if absent:
        notes = pd.concat([notes, notes_frame(absent)], ignore_index=True)
    return effects, notes


@dataclass(frozen=True)
class Comparisons:
    effects: pd.DataFrame
    alignment: pd.DataFrame
    gains: pd.DataFrame
    notes: pd.DataFrame


def compare(
    items: pd.DataFrame,
    languages: dict[str, Language],
    settings: StatsSettings,
    with_primary: bool = True,
    extra_rows: tuple = (),
) -> Comparisons:
    """effects.csv, alignment.csv, gains.csv and notes.csv from item-level predictions.
    with_primary False: no row is the primary test (one source of several, whose
    primary test is their interaction); every row is secondary. `extra_rows` as
    effects_table takes them."""
    unknown = sorted(set(items["lang"]) - set(languages))
    if unknown:
        raise XltError(f"predictions for language {unknown[0]}, which the config does not list")
    cells, passages = correctness(with_debiased_cells(with_forced_cells(items)))
    resampling = settings.resampling(passages.index)
    effects, effect_notes = effects_table(cells, languages, settings, resampling, with_primary, extra_rows)
    alignment, alignment_notes = alignment_table(cells, languages, settings, resampling)
    gains, gains_notes = gains_table(cells, languages, settings, resampling)
    notes = pd.concat([effect_notes, alignment_notes, gains_notes], ignore_index=True)
    too_few = too_few_note(resampling)
    if too_few:
        # Every bootstrap interval of the comparison is NaN (the Fisher-z ones over models stand).
        bootstrapped = (notes["table"] != "alignment") | notes["effect"].str.contains(":model_language", regex=False)
        notes.loc[bootstrapped, "note"] = [
            note if too_few in note else f"{note}; {too_few}" if note else too_few
            for note in notes.loc[bootstrapped, "note"]
        ]
        per_model = [notes_row("gains", "", too_few, model=model, role="") for model in cells]
        notes = pd.concat([notes, notes_frame(per_model)], ignore_index=True)
    if not passages.keyed:
        notes["note"] = [f"{note}; {passages.describe()}" if note else passages.describe() for note in notes["note"]]
    return Comparisons(effects, alignment, gains, notes)


def write_comparisons(comparisons: Comparisons, effects_out, alignment_out, gains_out, notes_out) -> None:
    write_csv(comparisons.effects, effects_out)
    write_csv(comparisons.alignment, alignment_out)
    write_csv(comparisons.gains, gains_out)
    write_csv(comparisons.notes, notes_out)
