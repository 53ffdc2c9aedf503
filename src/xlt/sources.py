"""The comparison of a study with one or more source languages.

Each source's fine-tuned variant is compared with the base model exactly as a
single-source study is (the effects of stats.compare, with relatedness defined for
that source), and its rows carry the source's name. With sources inside and outside
the related families, `relatedness_interaction` asks the design's question: is the
related-minus-control gain larger after fine-tuning on a related source than after an
unrelated one? On the same targets (no source is a target of it), a target's own
difficulty, and whatever fine-tuning teaches every language alike, cancel out.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from .errors import XltError
from .languages import language_table, source_languages
from .paths import SOURCE_COLUMN, finetuned_variants
from .stats import Comparison, Comparisons, ModelCells, ModelContext, Row, StatsSettings, accuracy_effect, compare, correctness
from .stattests import holm
from .verdict import INTERACTION


def _tagged(frame: pd.DataFrame, source: str, position: int = 1) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(position, SOURCE_COLUMN, source)
    return frame


def source_items(items: pd.DataFrame, variant: str) -> pd.DataFrame:
    """The base rows and one source's fine-tuned rows, the latter named `ft`."""
    subset = items[items["variant"].isin(["base", variant])].copy()
    subset.loc[subset["variant"] == variant, "variant"] = "ft"
    return subset


def interaction_targets(study: dict) -> tuple[list[str], list[str]]:
    """(related, control) targets shared by every source: no source is among them."""
    sources = set(source_languages(study))
    families = set(study["related_families"])
    targets = [code for code in study["languages"] if code not in sources]
    return [code for code in targets if study["languages"][code]["family"] in families], [
        code for code in targets if study["languages"][code]["family"] not in families
    ]


def interaction_primary_prompt(settings: StatsSettings) -> str | None:
    """The prompt under which the interaction is the primary test: direct for
    stats.primary auto, the named one for `<prompt>/relatedness_interaction`, else none."""
    if settings.primary == "auto":
        return "direct"
    prompt, _, effect = settings.primary.partition("/")
    return prompt if effect == INTERACTION else None


def interaction_sides(study: dict) -> tuple[list[str], list[str], list[str], list[str]]:
    """(sources of the related families, sources outside them, related targets, control
    targets) of the interaction; it exists when none of the four is empty."""
    sources = source_languages(study)
    inside = [source for source in sources if study["languages"][source]["family"] in study["related_families"]]
    return inside, [source for source in sources if source not in inside], *interaction_targets(study)


def interaction_weights(cells: ModelCells, study: dict, prompt: str) -> np.ndarray | None:
    """Weights over one model's cells whose sum is the interaction under `prompt`: (related
    − control fine-tuning gain | sources of the related families) − (the same | sources
    outside them), each side averaged over its sources; None where a cell is missing or
    the study has no such sources or targets."""
    variants = finetuned_variants(source_languages(study))
    inside, outside, related, control = interaction_sides(study)
    if not (inside and outside and related and control):
        return None
    comparisons = {source: Comparison("ft_gain", "", prompt, (variants[source], prompt), ("base", prompt)) for source in variants}
    needed = [(*cell, code) for comparison in comparisons.values() for cell in (comparison.after, comparison.before) for code in related + control]
    if not all(column in cells.columns for column in needed):
        return None
    return sum(cells.contrast_weights(comparisons[source], related, control) for source in inside) / len(inside) - sum(
        cells.contrast_weights(comparisons[source], related, control) for source in outside
    ) / len(outside)


def interaction_rows(items: pd.DataFrame, study: dict, settings: StatsSettings) -> list[Row]:
    """Per model and prompt: the interaction (interaction_weights) with its interval,
    sign-flip p and TOST, as accuracy_effect computes them."""
    inside, outside, related, control = interaction_sides(study)
    if not (inside and outside and related and control):
        return []
    cells, passages = correctness(items)
    resampling = settings.resampling(passages.index)
    rows = []
    for model, model_cells in cells.items():
        context = ModelContext.build(model, model_cells, resampling, settings)
        for prompt in ("direct", "cot"):
            weights = interaction_weights(model_cells, study, prompt)
            if weights is None:
                continue
            row = accuracy_effect(context, prompt, INTERACTION, weights)
            row.notes.append(
                f"(related {'+'.join(related)} minus control {'+'.join(control)} fine-tuning gain) after {'+'.join(inside)} "
                f"minus the same after {'+'.join(outside)}"
            )
            rows.append(row)
    # The interaction is the study's primary test under the direct prompt (stats.primary
    # auto), or under the prompt stats.primary names it with: Holm across models, for its
    # p and its TOST p.
    primary_prompt = interaction_primary_prompt(settings)
    for prompt in ("direct", "cot"):
        family = [row for row in rows if row.prompt == prompt]
        for row, adjusted, equivalence in zip(family, holm([row.p_value for row in family]), holm([row.equivalence_p for row in family])):
            row.p_adjusted = adjusted
            if prompt == primary_prompt:
                row.role, row.equivalence_p_adjusted = "primary", equivalence
    return rows


def compare_study(items: pd.DataFrame, study: dict, settings: StatsSettings) -> Comparisons:
    """effects, alignment, gains and notes: each source's rows (column `source`), and
    with several sources the interaction rows (source empty: they span the sources)."""
    sources = source_languages(study)
    variants = finetuned_variants(sources)
    unknown = sorted(set(items["variant"]) - {"base", *variants.values()})
    if unknown:
        raise XltError(
            f"predictions of variant {unknown[0]}, which the config's source languages ({', '.join(sources)}) do not make; "
            f"expected {', '.join(['base', *variants.values()])}"
        )
    # Each source's rows are a single-source study's, except that where the interaction
    # is the primary test they are all secondary: one primary test per model. Where the
    # config names the interaction and the study has none (no source outside the related
    # families, or a cell missing), each source keeps its automatic primary test.
    rows = interaction_rows(items, study, settings) if len(sources) > 1 else []
    interaction_primary = any(row.role == "primary" for row in rows)
    per_source = replace(settings, primary="auto") if len(sources) > 1 and interaction_primary_prompt(settings) and settings.primary != "auto" else settings
    parts = {source: compare(source_items(items, variants[source]), language_table(study, source), per_source, not interaction_primary) for source in sources}
    effects = [_tagged(part.effects, source) for source, part in parts.items()]
    notes = [_tagged(part.notes, source, 2) for source, part in parts.items()]
    if rows:
        columns = [column for column in effects[0].columns if column != SOURCE_COLUMN]
        effects.append(_tagged(pd.DataFrame([{column: getattr(row, column) for column in columns} for row in rows], columns=columns), ""))
        notes.append(
            _tagged(
                pd.DataFrame(
                    [
                        {
                            "table": "effects",
                            "model": row.model,
                            "prompt": row.prompt,
                            "effect": row.effect,
                            "method": row.method,
                            "holm_family": f"{row.role}: Holm across the models' {row.prompt}/{INTERACTION} tests",
                            "note": "; ".join(row.notes),
                            "role": row.role,
                        }
                        for row in rows
                    ],
                    columns=[column for column in notes[0].columns if column != SOURCE_COLUMN],
                ),
                "",
                2,
            )
        )
    return Comparisons(
        pd.concat(effects, ignore_index=True),
        pd.concat([_tagged(part.alignment, source, 0) for source, part in parts.items()], ignore_index=True),
        pd.concat([_tagged(part.gains, source) for source, part in parts.items()], ignore_index=True),
        pd.concat(notes, ignore_index=True),
    )
