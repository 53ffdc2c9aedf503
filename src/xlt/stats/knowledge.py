"""What a gain is made of: its knowledge part under each reading (the change of a
format-free score) and its format part (the rest), and the gain over the format-only
control. A knowledge cell at chance or one label is named, never read as "knowledge +0"."""

from __future__ import annotations

import math

import numpy as np

from ..diagnostics import is_constant
from ..languages import Language
from ..paths import CHOICE_PROMPT, CLOZE_PROMPT
from ..stattests import holm
from .cells import (
    CHANCE,
    CONTROL_COMPARISONS,
    CONTROL_VARIANT,
    DEBIASED_PROMPT,
    FORCED_PROMPT,
    FT_COT,
    FT_DIRECT,
    KNOWLEDGE_PROMPTS,
    Comparison,
    Reading,
)
from .effects import ModelContext, Row, accuracy_effect, bootstrap_interval
from .notes import interval_method, notes_row


def _needs(reading: Reading) -> str:
    """What a reading's cells come from, for the note where they are missing."""
    prompts = {reading.knowledge.after[1], reading.knowledge.before[1]}
    if reading.reading == "control":
        return "the format-only control's predictions (finetune.format_control; variant ctl-<source>)"
    return "; ".join(
        need
        for prompt, need in (
            (FORCED_PROMPT, "forced_choice on its CoT rows"),
            (CHOICE_PROMPT, "the choice cell"),
            (CLOZE_PROMPT, "the cloze cell"),
            (DEBIASED_PROMPT, "debiased_choice on the choice rows (option rotations)"),
        )
        if prompt in prompts
    )


def unreadable_cells(context: ModelContext, knowledge: Comparison, codes: list[str]) -> list[str]:
    """The knowledge cells of `knowledge` in `codes` that cannot show knowledge: one label
    for most items (xlt.diagnostics), or accuracy whose bootstrap interval covers chance
    (0.25; no interval, too few passages: not judged)."""
    cells, found = context.cells, []
    for code in codes:
        for cell in (knowledge.after, knowledge.before):
            if cell[1] not in KNOWLEDGE_PROMPTS:
                continue
            key = (*cell, code)
            column = cells.columns[key]
            top, answered = cells.top_shares.get(key, (math.nan, math.nan))
            low, high = context.resampling.interval(context.draws[:, column])
            name = f"{'/'.join(cell)}/{code}"
            if is_constant(top, answered):
                found.append(f"{name} one label for {top:.0%} of items")
            elif low <= CHANCE <= high:
                accuracy = cells.values[:, column].mean()
                found.append(f"{name} not distinguishable from chance ({accuracy:.2f}, interval covers {CHANCE})")
    return found


def _missing_reading(context: ModelContext, reading: Reading, names: tuple[str, str], absent: list[str]) -> dict:
    """The notes row that stands for a reading's rows where its knowledge cells are missing."""
    gain = reading.gain
    why = (
        f"missing: no {reading.reading} reading of the knowledge part: no "
        f"{', '.join(absent[:4])}{' ...' if len(absent) > 4 else ''} "
        f"(needs {_needs(reading)}; older runs and predictions from elsewhere may lack it)"
    )
    effect = f"{names[0]}_*, {names[1]}_*" + (
        f", {gain.gain}_format_share_targets" if reading.reading == "choice" else ""
    )
    return notes_row("effects", effect, why, model=context.model, prompt=gain.prompt)


def _described(context: ModelContext, prompt: str, name: str, method: str, weights: np.ndarray) -> Row:
    """A descriptive part of a gain (a weighted sum of cells) with its bootstrap interval."""
    low, high, no_interval = bootstrap_interval(context.resampling, context.draws @ weights)
    row = Row(
        context.model,
        prompt,
        name,
        float(context.cells.values.mean(axis=0) @ weights),
        context.n_items,
        method,
        low,
        high,
    )
    row.notes += [no_interval] if no_interval else []
    return row


def _format_share(
    context: ModelContext, prompt: str, name: str, total: np.ndarray, part: np.ndarray, method: str
) -> Row:
    """The format part's share of the gain over the targets (letter-choice reading)."""
    accuracy, draws = context.cells.values.mean(axis=0), context.draws
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(draws @ total != 0, draws @ (total - part) / (draws @ total), np.nan)
        estimate = float(accuracy @ (total - part) / (accuracy @ total)) if accuracy @ total != 0 else math.nan
    low, high, no_interval = bootstrap_interval(context.resampling, share)
    row = Row(
        context.model,
        prompt,
        name,
        estimate,
        context.n_items,
        method + "; share: format part / gain over the targets",
        low,
        high,
    )
    row.notes += [no_interval] if no_interval else []
    if not np.isfinite(estimate):
        row.notes.append("the gain over the targets is 0: no share to take")
    elif (interval := context.resampling.interval(draws @ total))[0] <= 0 <= interval[1]:
        row.notes.append(
            "the gain's interval covers 0: the share is unstable (its interval is wide or unbounded in practice)"
        )
    return row


def decomposition_effects(
    context: ModelContext, reading: Reading, languages: dict[str, Language], with_total: bool = True
) -> tuple[list[Row], list[dict]]:
    """Per language group and over all targets: the gain's knowledge part under one
    reading (the change of its knowledge score) and its format part (the rest), which
    add up to the gain on every resample; with the letter-choice reading also the format
    part's share of the gain over the targets; with `with_total` the gain over the
    targets (`<gain>_targets`, written once per gain by the first reading that has it). Bootstrap intervals only: a
    description of the gain, not a test, so outside the Holm families. A knowledge cell
    at chance or one label for most items is named on the rows that read it: there the
    score cannot show knowledge, and its part is not "knowledge +0". Where a cell is
    missing, no rows, and a note naming the cells and why."""
    gain, knowledge = reading.gain, reading.knowledge
    cells, prompt = context.cells, gain.prompt
    groups = cells.groups(gain, languages)
    groups["targets"] = groups["related"] + groups["control"]
    codes = [code for code in languages if any(code in members for members in groups.values())]
    absent = [
        f"{'/'.join(cell)}/{code}"
        for code in codes
        for cell in (knowledge.after, knowledge.before)
        if (*cell, code) not in cells.columns
    ]
    letters = reading.reading == "choice"
    names = (
        (f"{gain.gain}_choice", f"{gain.gain}_format")
        if letters
        else (knowledge.gain, f"{gain.gain}_format_{reading.reading}")
    )
    if absent:
        return [], [_missing_reading(context, reading, names, absent)]
    method = (
        f"{interval_method(context.settings, context.resampling)}; descriptive, not tested (outside the "
        f"Holm families); {reading.reading} reading: "
        f"knowledge part: {'/'.join(knowledge.after)} - {'/'.join(knowledge.before)}, format part: the gain minus it"
    )
    rows = []
    for group, members in groups.items():
        if not members:
            continue
        total, part = cells.gain_weights(gain, members), cells.gain_weights(knowledge, members)
        parts = {f"{names[0]}_{group}": part, f"{names[1]}_{group}": total - part}
        if group == "targets" and with_total:
            parts = {f"{gain.gain}_targets": total, **parts}
        found = [_described(context, prompt, name, method, weights) for name, weights in parts.items()]
        unreadable = unreadable_cells(context, knowledge, members)
        if unreadable:
            for row in found[-2:]:
                row.notes.append(
                    f"knowledge score unreadable in {len(unreadable)} cell(s): {', '.join(unreadable)}; "
                    f"there the {reading.reading} score cannot show "
                    "knowledge, so this part is not evidence of knowledge +0"
                )
        rows += found
        if group == "targets" and letters:
            rows.append(_format_share(context, prompt, f"{gain.gain}_format_share_targets", total, part, method))
    return rows, []


def control_effects(context: ModelContext, languages: dict[str, Language]) -> tuple[list[Row], list[dict]]:
    """Per language group: the fine-tuned variant's gain over its format-only control, and
    the control's gain over the base model, with the passage bootstrap interval, sign-flip
    p and TOST of accuracy_effect. Holm within one model and prompt over these rows only,
    so that adding the control leaves the other secondary rows' adjusted p-values as they
    were. Where the control's cells are missing, no rows, and a note saying so."""
    rows, absent = [], []
    for comparison in CONTROL_COMPARISONS:
        codes = context.cells.langs(FT_DIRECT if comparison.prompt == "direct" else FT_COT, languages)
        have = context.cells.langs(comparison, languages)
        missing = [f"{CONTROL_VARIANT}/{comparison.prompt}/{code}" for code in codes if code not in have]
        if missing or not have:
            if comparison.gain == "ft_gain_over_control":
                why = (
                    "missing: no format-only control for "
                    f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} "
                    "(finetune.format_control does not "
                    "name this source, or the tree predates the control): no gain over the control, and "
                    "no control reading of the knowledge part"
                )
                absent.append(
                    notes_row(
                        "effects",
                        "ft_gain_over_control_*, control_gain_*",
                        why,
                        model=context.model,
                        prompt=comparison.prompt,
                    )
                )
            continue
        for group, members in context.cells.groups(comparison, languages).items():
            if members:
                rows.append(
                    accuracy_effect(
                        context,
                        comparison.prompt,
                        f"{comparison.gain}_{group}",
                        context.cells.gain_weights(comparison, members),
                    )
                )
    for prompt in sorted({row.prompt for row in rows}):
        family = [row for row in rows if row.prompt == prompt and np.isfinite(row.p_value)]
        for row, adjusted in zip(family, holm([row.p_value for row in family])):
            row.p_adjusted = adjusted
            row.holm_family = (
                f"secondary: Holm over the {len(family)} format-control p-values of {context.model} / {prompt}"
            )
    return rows, absent
