"""Whether a predictions tree holds what the statistics compare: every cell (model x
variant x prompt x language), each with every item of the tree, and one answer key. A
missing or incomplete cell changes estimates without a word (a gain averaged over two
related languages instead of three, an effect that disappears with its languages, the
statistics run on the few items every cell shares), so it is an error unless the user
allows it; then every row of notes.csv it affects says which cells were missing. Item
ids that mix passage keys with plain ids, and model names the tables reserve, stop
whatever the user allows: no reading of them is right."""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import product

import pandas as pd

from .errors import XltError
from .paths import POOLED_MODEL, PREDICTION_CELL

CELL = ("model", "variant", "prompt", "lang")


def cell_file(cell: tuple[str, str, str, str]) -> str:
    return PREDICTION_CELL.format(**dict(zip(CELL, cell)))


@dataclass(frozen=True)
class MissingCell:
    cell: tuple[str, str, str, str]
    text: str  # `model/variant/prompt/lang.parquet`, with "(20 of 30 items)" when incomplete
    incomplete: bool
    lacks: tuple[str, ...] = ()  # the item ids of the tree that an incomplete cell has no row for
    of: int = 0  # how many items the tree holds


def missing_cells(items: pd.DataFrame, langs, variants=None, prompts=()) -> list[MissingCell]:
    """Cells absent from `items` and cells lacking items that another cell holds (items
    are parallel: every language, variant and model answers the same ones). The cells
    expected: every model found, crossed with `variants` (the study's; default: those
    found), the prompts found and `prompts` (those the primary test reads), and every
    configured language."""
    held = items.groupby(list(CELL))["item_id"].unique().to_dict()
    counts = {cell: len(ids) for cell, ids in held.items()}
    every_item = set(items["item_id"])
    n_items = len(every_item)
    models = sorted(set(items["model"]))
    variants = sorted(set(items["variant"])) if variants is None else list(variants)
    prompts = sorted(set(items["prompt"]) | set(prompts))
    missing = []
    for cell in product(models, variants, prompts, list(langs)):
        if cell not in counts:
            missing.append(MissingCell(cell, cell_file(cell), incomplete=False))
        elif counts[cell] < n_items:
            text = f"{cell_file(cell)} ({counts[cell]} of {n_items} items)"
            lacks = tuple(sorted(map(str, every_item - set(held[cell]))))
            missing.append(MissingCell(cell, text, incomplete=True, lacks=lacks, of=n_items))
    return missing


def check_names(items: pd.DataFrame, source: str) -> None:
    """What no allowance can make readable: a model named as the rows over all models,
    and item ids of which some carry a passage key (`link#question_number`) and some do
    not (their questions would be resampled as independent, the passages' together)."""
    if POOLED_MODEL in set(items["model"]):
        raise XltError(
            f"{source}: model {POOLED_MODEL!r}: the name is reserved for the rows estimated from all "
            "models together; rename that model"
        )
    ids = pd.Series(items["item_id"].unique()).astype(str)
    keyless = ids[~ids.str.contains("#", regex=False)]
    if 0 < len(keyless) < len(ids):
        raise XltError(
            f"{source}: item {keyless.iloc[0]!r} has no passage key but other items do ({len(keyless)} of "
            f"{len(ids)} ids lack '#'); "
            "item ids are link#question_number throughout (questions of a passage are resampled together) "
            "or plain ids throughout"
        )


def check_answer_key(items: pd.DataFrame, source: str) -> None:
    """Every cell scores an item against the same correct option."""
    answers = items.groupby(["lang", "item_id"])["answer"].nunique()
    differ = answers[answers > 1]
    if len(differ):
        lang, item = differ.index[0]
        rows = items[(items["lang"] == lang) & (items["item_id"] == item)].drop_duplicates("answer")
        first, second = rows.iloc[0], rows.iloc[1]
        raise XltError(
            f"{source}: item {item} ({lang}) has answer {first['answer']} in "
            f"{cell_file(tuple(first[list(CELL)]))} but {second['answer']} in "
            f"{cell_file(tuple(second[list(CELL)]))} ({len(differ)} item(s) differ); every model must be "
            "scored against one answer key"
        )


def check_complete(
    items: pd.DataFrame, langs, allow_missing: bool, source: str, variants=None, prompts=()
) -> list[MissingCell]:
    """The missing cells (allowed), or an error naming them."""
    check_names(items, source)
    check_answer_key(items, source)
    missing = missing_cells(items, langs, variants, prompts)
    if missing and not allow_missing:
        shown = ", ".join(cell.text for cell in missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise XltError(
            f"{source}: {len(missing)} cell(s) missing or incomplete: {shown}; every model needs every "
            "item of every variant, prompt and language. "
            "Add them, or allow it (xlt compare --allow-missing, or stats.allow_missing_cells: true) and "
            "notes.csv names them"
        )
    return missing


def _reads(variant: str, source: str | None) -> bool:
    """Whether rows of `source` read cells of `variant`. A source's fine-tuned variant
    (ft-<source>) and its format-only control (ctl-<source>) are read by that source's
    rows; the rows across sources (source "") read the base and every fine-tuned variant,
    no control (stats.sources.across_source_items); the base is read by every row.
    `source` None: the notes carry no source column, and every row reads every cell."""
    from .paths import control_source, variant_source

    if source is None or variant == "base":
        return True
    if source == "":
        return variant_source(variant) is not None
    return source in (variant_source(variant), control_source(variant))


# Up to this many incomplete cells of one model and variant are named one by one.
PLAIN_CELLS = 4


def _cells_text(cells: list[MissingCell]) -> str:
    """The incomplete cells, more than PLAIN_CELLS of one model and variant lacking the
    same items written as one pattern (`m/ft-pes_Arab/{cot,direct}/{arb_Arab,heb_Hebr,amh_Ethi}.parquet
    (6 cells, 13 of 16 items each)`) where they are every prompt crossed with every language of the group."""
    groups: dict[tuple, list[MissingCell]] = {}
    for cell in cells:
        groups.setdefault((cell.cell[0], cell.cell[1], cell.lacks), []).append(cell)
    texts = []
    for (model, variant, lacks), group in groups.items():
        prompts = sorted({cell.cell[2] for cell in group})
        langs = list(dict.fromkeys(cell.cell[3] for cell in group))
        if len(group) <= PLAIN_CELLS or len(group) != len(prompts) * len(langs):
            texts += [cell.text for cell in group]
            continue
        held = group[0].of - len(lacks)
        texts.append(
            f"{model}/{variant}/{{{','.join(prompts)}}}/{{{','.join(langs)}}}.parquet "
            f"({len(group)} cells, {held} of {group[0].of} items each)"
        )
    return ", ".join(texts)


def dropped_items_note(cells: list[MissingCell]) -> str:
    """What a row lost to incomplete cells it reads: the statistics keep the items every
    cell of a comparison holds (pairing), so an item one of them lacks is dropped
    everywhere in it; which items, and the cells that lack them."""
    dropped = sorted(set().union(*(cell.lacks for cell in cells)))
    total = cells[0].of
    shown = ", ".join(dropped[:10]) + (f" and {len(dropped) - 10} more" if len(dropped) > 10 else "")
    return (
        f"computed on {total - len(dropped)} of {total} items: {len(dropped)} item(s) dropped ({shown}) because "
        f"incomplete cell(s) it reads lack them: {_cells_text(cells)}"
    )


def note_missing(comparisons, missing: list[MissingCell]):
    """`comparisons` with each notes.csv row that a missing cell affects saying so. An
    incomplete cell affects every row that reads its variant, of every model (the
    statistics keep only the items every cell of the comparison holds, across models); a
    missing one the rows of its model, of the pooled model and over all models (model
    empty), under the prompts whose comparisons read that cell."""
    from .paths import POOLED_MODEL, SOURCE_COLUMN, control_source, variant_source
    from .stats.cells import CONTROL_VARIANT, prompts_using

    if not missing:
        return comparisons
    notes = comparisons.notes.copy()

    # A source's fine-tuned variant (ft-<source>) is read where `ft` is, and its control
    # (ctl-<source>) where the control is.
    def compared_as(variant: str) -> str:
        return "ft" if variant_source(variant) else CONTROL_VARIANT if control_source(variant) else variant

    read_under = {cell.cell: prompts_using((compared_as(cell.cell[1]), cell.cell[2])) for cell in missing}
    sources = notes[SOURCE_COLUMN].fillna("") if SOURCE_COLUMN in notes else [None] * len(notes)
    texts = []
    for model, prompt, source, note in zip(
        notes["model"].fillna(""), notes["prompt"].fillna(""), sources, notes["note"].fillna("")
    ):
        read = [cell for cell in missing if _reads(cell.cell[1], source)]
        incomplete = [cell for cell in read if cell.incomplete]
        absent = [
            cell.text
            for cell in read
            if not cell.incomplete
            and model in ("", POOLED_MODEL, cell.cell[0])
            and (prompt == "" or prompt in read_under[cell.cell])
        ]
        added = [f"computed without missing or incomplete cell(s) {', '.join(absent)}"] if absent else []
        added += [dropped_items_note(incomplete)] if incomplete else []
        texts.append("; ".join([note, *added] if note else added))
    notes["note"] = texts
    return replace(comparisons, notes=notes)
