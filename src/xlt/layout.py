"""Trees in the old single-source layout, whose one fine-tuned variant is `ft` (today
every fine-tuned variant names its source, ft-<source>). The artifact contract is
public, so such trees exist elsewhere: with one source in the config `ft` is that
source's variant, read as ft-<source>, and every notes.csv row it reaches says so; with
several `ft` could be any of them, so it is an error."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from .completeness import CELL, cell_file
from .errors import XltError
from .paths import OLD_SOURCE_VARIANT, POOLED_MODEL, SOURCE_VARIANT


@dataclass(frozen=True)
class OldLayout:
    """The models whose `ft` rows were read as `variant` (ft-<source>)."""

    models: tuple[str, ...]
    variant: str


def _cell_path(origin: str, cell: tuple) -> str:
    """Where a cell's rows came from: its file under a predictions folder, or the items
    file and the cell's place in the layout."""
    return str(Path(origin) / cell_file(cell)) if Path(origin).is_dir() else f"{origin} ({cell_file(cell)})"


def read_old_layout(
    items: pd.DataFrame, sources: list[str], variants: list[str], origin: str
) -> tuple[pd.DataFrame, OldLayout | None]:
    """`items` with the old layout's `ft` rows named after the config's one source, and
    which models had them (None: the tree is in today's layout). `variants`: the study's,
    named in the error; `origin`: the predictions folder or items file read."""
    old = items["variant"] == OLD_SOURCE_VARIANT
    if not old.any():
        return items, None
    cell = tuple(items.loc[old, list(CELL)].iloc[0])
    if len(sources) != 1:
        raise XltError(
            f"{_cell_path(origin, cell)}: variant {OLD_SOURCE_VARIANT!r} is the old single-source "
            "layout's, which a study of "
            f"{len(sources)} source languages ({', '.join(sources)}) cannot read; the variants are "
            f"{', '.join(variants)}"
        )
    variant = SOURCE_VARIANT.format(source=sources[0])
    models = tuple(sorted(set(items.loc[old, "model"])))
    both = sorted(set(models) & set(items.loc[items["variant"] == variant, "model"]))
    if both:
        raise XltError(
            f"{_cell_path(origin, cell)}: model {both[0]} has predictions of variant "
            f"{OLD_SOURCE_VARIANT!r} (the old single-source layout) "
            f"and of {variant!r}, the same variant's name today; keep one"
        )
    items = items.copy()
    items.loc[old, "variant"] = variant
    return items, OldLayout(models, variant)


def note_old_layout(comparisons, layout: OldLayout | None):
    """`comparisons` with each notes.csv row that reads an old-layout model (its own rows,
    the pooled model's and those over all models) saying how its tree was read."""
    if layout is None:
        return comparisons
    notes = comparisons.notes.copy()
    texts = []
    for model, note in zip(notes["model"].fillna(""), notes["note"].fillna("")):
        models = [model] if model in layout.models else list(layout.models) if model in ("", POOLED_MODEL) else []
        if models:
            added = (
                f"{', '.join(models)}: predictions in the old single-source layout (variant "
                f"{OLD_SOURCE_VARIANT!r}), read as {layout.variant}"
            )
            note = f"{note}; {added}" if note else added
        texts.append(note)
    notes["note"] = texts
    return replace(comparisons, notes=notes)
