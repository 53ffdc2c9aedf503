"""The comparison of a study with one or more source languages.

Each source's fine-tuned variant is compared with the base model exactly as a
single-source study is (the effects of stats.compare.compare, with relatedness defined for
that source), and its rows carry the source's name. With sources inside and outside
the related families, `relatedness_interaction` asks the design's question: is the
related-minus-control gain larger after fine-tuning on a related source than after an
unrelated one? On the same targets (no source is a target of it), a target's own
difficulty, and whatever fine-tuning teaches every language alike, cancel out.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import cast

import numpy as np
import pandas as pd

from ..errors import XltError
from ..languages import control_sources, interaction_sides, language_table, source_languages
from ..paths import SOURCE_COLUMN, control_variants, finetuned_variants
from ..primary import INTERACTION, INTERACTION_PROMPTS, PrimaryTest, resolve_primary
from ..stattests import holm
from .cells import CONTROL_VARIANT, Comparison, ModelCells, correctness
from .compare import Comparisons, compare
from .effects import ModelContext, Row, accuracy_effect, row_tables
from .notes import too_few_note
from .proximity import interaction_slope_rows, slope_rows
from .relatedness import effects_tested
from .settings import StatsSettings


def _tagged(frame: pd.DataFrame, source: str, position: int = 1) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(position, SOURCE_COLUMN, source)
    return frame


def source_items(items: pd.DataFrame, variant: str, control: str | None = None) -> pd.DataFrame:
    """The base rows and one source's fine-tuned rows, the latter named `ft`, and its
    format-only control's rows (variant `control`) named CONTROL_VARIANT."""
    subset = items[items["variant"].isin(["base", variant, control])].copy()
    subset.loc[subset["variant"] == variant, "variant"] = "ft"
    subset.loc[subset["variant"] == control, "variant"] = CONTROL_VARIANT
    return subset


def across_source_items(items: pd.DataFrame, study: dict) -> pd.DataFrame:
    """The predictions the rows across sources (the interactions) read: the base and
    every source's fine-tuned variant. Their items are those every such cell holds (both sources' items, paired);
    a format-only control, which none of them reads, must not drop items from them."""
    return items[items["variant"].isin(["base", *finetuned_variants(source_languages(study)).values()])]


def interaction_weights(cells: ModelCells, study: dict, prompt: str) -> np.ndarray | None:
    """Weights over one model's cells whose sum is the interaction under `prompt`: (related
    − control fine-tuning gain | sources of the related families) − (the same | sources
    outside them), each side averaged over its sources; None where a cell is missing or
    the study has no such sources or targets."""
    variants = finetuned_variants(source_languages(study))
    inside, outside, related, control = interaction_sides(study)
    if not (inside and outside and related and control):
        return None
    comparisons = {
        source: Comparison("ft_gain", "", prompt, (variants[source], prompt), ("base", prompt)) for source in variants
    }
    needed = [
        (*cell, code)
        for comparison in comparisons.values()
        for cell in (comparison.after, comparison.before)
        for code in related + control
    ]
    if not all(column in cells.columns for column in needed):
        return None
    # Summed in order, as the interaction has always been (a sum of arrays is an array).
    related_side = cast(
        np.ndarray, sum(cells.contrast_weights(comparisons[source], related, control) for source in inside)
    )
    other_side = cast(
        np.ndarray, sum(cells.contrast_weights(comparisons[source], related, control) for source in outside)
    )
    return related_side / len(inside) - other_side / len(outside)


def interaction_rows(
    items: pd.DataFrame, study: dict, settings: StatsSettings, primary_prompt: str | None = None
) -> list[Row]:
    """Per model and prompt: the interaction (interaction_weights) with its interval,
    sign-flip p and TOST, as accuracy_effect computes them; under `primary_prompt` the
    primary test (xlt.primary), Holm across models for its p and its TOST p."""
    inside, outside, related, control = interaction_sides(study)
    if not (inside and outside and related and control):
        return []
    cells, passages = correctness(items)
    resampling = settings.resampling(passages.index)
    rows = []
    for model, model_cells in cells.items():
        context = ModelContext.build(model, model_cells, resampling, settings)
        for prompt in INTERACTION_PROMPTS:
            weights = interaction_weights(model_cells, study, prompt)
            if weights is None:
                # Cells missing, which the user allowed: the primary's row is written by
                # absent_primary_rows; any other is written too, saying so, not left out.
                if prompt != primary_prompt:
                    rows.append(no_estimate_row(model, prompt, INTERACTION, f"the {prompt}/{INTERACTION} test"))
                continue
            row = accuracy_effect(context, prompt, INTERACTION, weights)
            row.notes.append(
                f"(related {'+'.join(related)} minus control {'+'.join(control)} fine-tuning gain) after "
                f"{'+'.join(inside)} "
                f"minus the same after {'+'.join(outside)}"
            )
            if too_few_note(resampling):
                row.notes.append(too_few_note(resampling))
            rows.append(row)
    for prompt in INTERACTION_PROMPTS:
        family = [row for row in rows if row.prompt == prompt and math.isfinite(row.estimate)]
        for row, adjusted, equivalence in zip(
            family, holm([row.p_value for row in family]), holm([row.equivalence_p for row in family])
        ):
            row.p_adjusted = adjusted
            if prompt == primary_prompt:
                row.role, row.equivalence_p_adjusted = "primary", equivalence
            row.holm_family = f"{row.role}: Holm across the models' {row.prompt}/{INTERACTION} tests"
    return rows


def absent_primary_rows(effects: pd.DataFrame, models: list[str], test: PrimaryTest) -> list[Row]:
    """A row for each model whose primary test has no estimate (its cells missing, which
    the user allowed): still one primary row per model, saying so."""
    chosen = effects[(effects["role"] == "primary") & (effects[SOURCE_COLUMN] == test.source)]
    test_name = f"the primary test {test.name}{f' of source {test.source}' if test.source else ''}"
    return [
        no_estimate_row(model, test.prompt, test.effect, test_name, role="primary")
        for model in models
        if model not in set(chosen["model"])
    ]


def no_estimate_row(model: str, prompt: str, effect: str, test_name: str, role: str = "secondary") -> Row:
    """The row of a test whose cells are missing (which the user allowed): NaN, saying so,
    so that effects.csv keeps one row per model for it rather than leaving it out."""
    return Row(
        model,
        prompt,
        effect,
        math.nan,
        0,
        "",
        role=role,
        holm_family=f"{role}: no estimate to adjust",
        notes=[f"no estimate: cells {test_name} reads are missing for {model}"],
    )


def _row_tables(rows: list[Row], source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows built here (the interaction, absent primary tests) as effects and notes rows of `source`."""
    effects, notes = row_tables(rows)
    return _tagged(effects, source), _tagged(notes, source, 2)


def compare_study(items: pd.DataFrame, study: dict, settings: StatsSettings) -> Comparisons:
    """effects, alignment, gains and notes: each source's rows (column `source`), and
    with several sources the interaction rows (source empty: they span the sources)."""
    sources = source_languages(study)
    variants, controls = finetuned_variants(sources), control_variants(control_sources(study))
    expected = ["base", *variants.values(), *controls.values()]
    unknown = sorted(set(items["variant"]) - set(expected))
    if unknown:
        raise XltError(
            f"predictions of variant {unknown[0]}, which the config's source languages "
            f"({', '.join(sources)}) do not make, nor its format-only "
            f"controls (finetune.format_control: {', '.join(controls) or 'none'}); expected {', '.join(expected)}"
        )
    # One primary test per model, chosen from the config (xlt.primary): the interaction's
    # rows, or one source's, whose compare alone has a primary row; every other row is
    # secondary.
    test = resolve_primary(study, settings.primary, effects_tested)
    paired = across_source_items(items, study)
    rows = (
        interaction_rows(paired, study, settings, test.prompt if test.source == "" else None)
        if len(sources) > 1
        else []
    )
    own = replace(settings, primary=test.name)
    parts = {
        source: compare(
            source_items(items, variants[source], controls.get(source)),
            language_table(study, source),
            own,
            source == test.source,
            (slope_rows,),
        )
        for source in sources
    }
    effects = [_tagged(part.effects, source) for source, part in parts.items()]
    notes = [_tagged(part.notes, source, 2) for source, part in parts.items()]
    if rows:
        across = _row_tables(rows, "")
        effects.append(across[0])
        notes.append(across[1])
    slopes = interaction_slope_rows(paired, study, settings)
    if slopes:
        tables = _row_tables(slopes, "")
        effects.append(tables[0])
        notes.append(tables[1])
    absent = absent_primary_rows(pd.concat(effects, ignore_index=True), sorted(set(items["model"])), test)
    if absent:
        tables = _row_tables(absent, test.source)
        effects.append(tables[0])
        notes.append(tables[1])
    return Comparisons(
        pd.concat(effects, ignore_index=True),
        pd.concat([_tagged(part.alignment, source, 0) for source, part in parts.items()], ignore_index=True),
        pd.concat([_tagged(part.gains, source) for source, part in parts.items()], ignore_index=True),
        pd.concat(notes, ignore_index=True),
    )
