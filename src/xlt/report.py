"""The report: markdown tables, PNG plots, HTML tables for `snakemake --report`, and a
plain-language verdict per model."""

from __future__ import annotations

import itertools
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from . import paths
from .atomic import atomic_path, write_text
from .diagnostics import CONSTANT_MIN_PARSED, CONSTANT_TOP_SHARE
from .languages import GROUPS, Language
from .reasons import BOOTSTRAP_OVER
from .verdict import INTERACTION, primary_of, verdict

CELLS = [("base", "direct"), ("ft", "direct"), ("base", "cot"), ("ft", "cot")]
VARIANT_NAMES = {"base": "base model", "ft": "fine-tuned"}
# The choice cell is the likeliest label at the answer position: a letter score, not
# format-free (it needs multiple-choice symbol binding; docs/statistics.md).
PROMPT_NAMES = {"direct": "direct", "cot": "CoT", "choice": "choice (letter score)"}
# A cell is mostly truncated past this share (issue 13); one label: xlt.diagnostics.
TRUNCATED_SHARE = 0.5
# Okabe & Ito's palette and distinct marker shapes: series stay apart under the common
# colour-vision deficiencies and in greyscale print. Yellow, the faintest on paper, last.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")
# (title, prompt of the effects rows, their name prefix, the difference in differences)
GAIN_PANELS = (
    ("fine-tuning gain, direct", "direct", "ft_gain", "relatedness"),
    ("fine-tuning gain, CoT", "cot", "ft_gain", "relatedness"),
    ("CoT gain, base model", "cot", "cot_gain", "cot_relatedness"),
)
# (prompt, effect) of the verdicts besides the primary test's, which comes first.
VERDICT_EFFECTS = (("direct", "relatedness"), ("cot", "relatedness"), ("cot", "cot_relatedness"))
GAIN_SERIES = (
    ("source", "source language"),
    ("related", "related targets"),
    ("control", "controls"),
    ("difference", "related − control"),
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 9,
            "axes.titlesize": 10,
            "axes.labelsize": 9,
            "legend.fontsize": 8,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "savefig.dpi": 200,
        }
    )
    return plt


def _save(figure, path: Path) -> None:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)


def _points_axis(axis) -> None:
    """Differences of shares, labelled in signed percentage points."""
    axis.set_major_formatter(lambda value, _: f"{100 * value:+.0f}".replace("-", "−") if round(100 * value) else "0")


def _text_colour(rgba) -> str:
    """Black or white, whichever reads better on a cell of this colour."""
    red, green, blue = rgba[:3]
    return "black" if 0.2126 * red + 0.7152 * green + 0.0722 * blue > 0.4 else "white"


def percent(share: float) -> str:
    """A share in percent or points as the config gives it, unrounded: 0.95 -> "95",
    0.025 -> "2.5" (`{:g}`, as the verdicts write the margin)."""
    return f"{round(100 * share, 9):g}"


def language_order(languages: dict[str, Language], present) -> list[str]:
    """Source, then related targets, then controls, each in config order."""
    present = set(present)
    return [code for group in GROUPS for code, lang in languages.items() if lang.group == group and code in present]


def report_variants(present) -> list[str]:
    """base, then the fine-tuned variants (one `ft-<source>` per source), then the
    format-only controls (`ctl-<source>`)."""
    present = set(present)
    others = sorted(
        present - set(paths.VARIANTS), key=lambda variant: (paths.control_source(variant) is not None, variant)
    )
    return [variant for variant in paths.VARIANTS if variant in present] + others


def variant_title(variant: str) -> str:
    source, control = paths.variant_source(variant), paths.control_source(variant)
    return (
        f"fine-tuned on {source}"
        if source
        else f"format-only control ({control})"
        if control
        else VARIANT_NAMES[variant]
    )


def rows_by_source(frame: pd.DataFrame) -> dict[str | None, pd.DataFrame]:
    """Source -> its rows, in file order; "" holds the rows across sources. A table
    without the column (an older tree's) is one source's, under None."""
    if paths.SOURCE_COLUMN not in frame.columns:
        return {"": frame.iloc[0:0], None: frame}
    source = frame[paths.SOURCE_COLUMN].fillna("")
    return {name: frame[source == name] for name in dict.fromkeys(source)}


def study_verdicts(
    effects: pd.DataFrame,
    models: list[str],
    margin: float,
    *,
    alpha: float,
    proximity_margin: float,
    notes: pd.DataFrame | None = None,
) -> list[str]:
    """With several sources the interaction first (the design's test: primary under the
    direct prompt); then per source (named when there are several) its primary test, if
    it has one (not where the interaction is primary), and the secondary verdicts.
    `notes`: notes.csv, whose reasons for a missing interval the verdicts give."""
    parts = rows_by_source(effects)
    # Each source's notes beside its effects; a notes.csv without sources is all one's.
    notes_parts = rows_by_source(notes) if notes is not None else {}

    def notes_of(source: str | None) -> pd.DataFrame | None:
        return notes_parts.get(source, notes_parts.get(None))

    sources = [source for source in parts if source != ""]
    lines = []  # (whether the line is the primary test's, the line)
    across = parts.get("", effects.iloc[0:0])
    if (across["effect"] == INTERACTION).any():
        primary = primary_of(across)
        lines += [
            (
                (prompt, INTERACTION) == primary,
                verdict(
                    across,
                    model,
                    prompt,
                    margin,
                    INTERACTION,
                    alpha=alpha,
                    notes=notes_of(""),
                    proximity_margin=proximity_margin,
                ),
            )
            for prompt in ("direct", "cot")
            for model in models
        ]
    for source in sources:
        rows, label = parts[source], f"fine-tuned on {source}: " if len(sources) > 1 else ""
        primary = primary_of(rows)
        keys = [*([primary] if primary else []), *(key for key in VERDICT_EFFECTS if key != primary)]
        lines += [
            (
                (prompt, effect) == primary,
                label
                + verdict(
                    rows,
                    model,
                    prompt,
                    margin,
                    effect,
                    alpha=alpha,
                    notes=notes_of(source),
                    proximity_margin=proximity_margin,
                ),
            )
            for prompt, effect in keys
            for model in models
        ]
    # The primary test's lines first, wherever its rows are (the interaction's, or one
    # source's under stats.primary: ...@source); the rest in the order above.
    return [line for primary, line in lines if primary] + [line for primary, line in lines if not primary]


def provenance_lines(record: dict) -> list[str]:
    """The report's view: one line per model and data set, then versions and hashes."""
    lines = [
        f"xlt {record['xlt']['version']}, git commit {record['xlt']['git_commit']}; config sha256 "
        f"{record['config_sha256']}"
    ]
    for name, model in record["models"].items():
        lines.append(
            f"model {name}: {model.get('id') or model.get('source') or model.get('path')} @ {model['resolved']}"
        )
    belebele = record["datasets"]["belebele"]
    if belebele["kind"] == "hub":
        lines.append(f"test data {belebele['id']} @ {belebele['resolved']}")
    else:
        lines += [f"test data fixture {lang} @ {digest}" for lang, digest in belebele["files"].items()]
    for lang, entry in record["datasets"]["training"].items():
        where = entry.get("path") or entry.get("id") or "Belebele training split"
        checks = entry.get("checks", {})
        found = [
            f"{len(checks[key])} {what}"
            for key, what in (("test_items", "test items trained on"), ("duplicates_dropped", "repeated rows dropped"))
            if checks.get(key)
        ]
        lines.append(
            f"training data {lang}: {where}"
            + (f" @ {entry['resolved']}" if "resolved" in entry else "")
            + (f" ({', '.join(found)})" if found else "")
        )
    lines.append("libraries: " + ", ".join(f"{name} {version}" for name, version in record["libraries"].items()))
    return lines


def cells_figure(accuracy: pd.DataFrame, languages: dict[str, Language], column: str, label: str, chance: float | None):
    """Heatmap of `column` (a share, 0-1), model x language, in a 2 x 2 grid of panels:
    base and fine-tuned side by side, direct above CoT. Every cell prints its value, so
    the colour is never the only reading. Wider than tall, so the report shows it whole."""
    plt = _pyplot()
    models = sorted(accuracy["model"].unique())
    order = language_order(languages, accuracy["lang"])
    variants = report_variants(accuracy["variant"])
    prompts = list(dict.fromkeys(prompt for _, prompt in CELLS))
    panel_width, panel_height = 0.32 * len(order) + 0.1, 0.27 * len(models) + 0.1
    figure, axes = plt.subplots(
        len(prompts),
        len(variants),
        figsize=(max(5.0, 2.3 + len(variants) * panel_width), 1.8 + len(prompts) * (panel_height + 0.3)),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    cmap = plt.get_cmap("cividis")
    groups = [languages[code].group for code in order]
    boundaries = [k for k in range(1, len(order)) if groups[k] != groups[k - 1]]
    for (row, prompt), (col, variant) in itertools.product(enumerate(prompts), enumerate(variants)):
        ax = axes[row, col]
        cell = accuracy[(accuracy["variant"] == variant) & (accuracy["prompt"] == prompt)]
        grid = (
            cell.pivot(index="model", columns="lang", values=column)
            .reindex(index=models, columns=order)
            .to_numpy(float)
        )
        image = ax.imshow(grid, cmap=cmap, vmin=0, vmax=1, aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            text, colour = ("–", "black") if np.isnan(value) else (f"{100 * value:.0f}", _text_colour(cmap(value)))
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
        for k in boundaries:
            ax.axvline(k - 0.5, color="white", lw=3)
        ax.tick_params(length=0)
        ax.spines[:].set_visible(False)
        if row == 0:
            # Group names over their columns, then the variant over the panel.
            centres = {
                group: np.mean([k for k, g in enumerate(groups) if g == group]) for group in dict.fromkeys(groups)
            }
            top = ax.secondary_xaxis("top")
            top.set_xticks(list(centres.values()), labels=list(centres), fontsize=8, style="italic")
            top.tick_params(length=0)
            top.spines[:].set_visible(False)
            ax.set_title(variant_title(variant), fontweight="bold")
        if row == len(prompts) - 1:
            ax.set_xticks(range(len(order)), labels=order, rotation=45, ha="right", rotation_mode="anchor")
        if col == len(variants) - 1:
            ax.yaxis.set_label_position("right")
            ax.set_ylabel(f"{PROMPT_NAMES[prompt]} prompt", rotation=270, labelpad=12, fontweight="bold")
    axes[0, 0].set_yticks(range(len(models)), labels=models)
    bar = figure.colorbar(image, ax=axes, shrink=0.8, label=f"{label} (%)", pad=0.01, aspect=30)
    bar.set_ticks(sorted({0.0, 0.25, 0.5, 0.75, 1.0} | ({chance} if chance is not None else set())))
    bar.ax.yaxis.set_major_formatter(
        lambda value, _: f"{100 * value:.0f}" + (" chance" if chance is not None and np.isclose(value, chance) else "")
    )
    if chance is not None:
        bar.ax.axhline(chance, color="white", lw=2)
    return figure


# (column of accuracy.csv, panel title) of the diagnostics figure, and the column whose
# warning threshold a framed cell passes.
DIAGNOSTICS = (
    ("parse_rate", "answer\nstated"),
    ("accuracy_given_parsed", "accuracy given\nstated"),
    ("forced_accuracy", "forced\naccuracy"),
    ("top_choice_share", "top label\nshare"),
    ("truncation_rate", "cut by\nbudget"),
    ("empty_rate", "empty\noutput"),
)
PROMPT_ORDER = ("direct", "cot", "choice")


def flagged(accuracy: pd.DataFrame, column: str) -> pd.Series:
    """Rows whose `column` passes its warning threshold (see format_warnings)."""
    if column == "top_choice_share":
        return (accuracy["top_choice_share"] >= CONSTANT_TOP_SHARE) & (accuracy["parse_rate"] >= CONSTANT_MIN_PARSED)
    if column == "truncation_rate":
        return accuracy["truncation_rate"] > TRUNCATED_SHARE
    return pd.Series(False, index=accuracy.index)


def diagnostics_figure(accuracy: pd.DataFrame, languages: dict[str, Language]):
    """One heatmap panel per diagnostic, a row per model x variant x prompt, a column
    per language; every cell prints its value, and a cell that raises a warning in
    summary.md is framed in red."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    order = language_order(languages, accuracy["lang"])
    prompts = [prompt for prompt in PROMPT_ORDER if prompt in set(accuracy["prompt"])] + sorted(
        set(accuracy["prompt"]) - set(PROMPT_ORDER)
    )
    keys = [
        (model, variant, prompt)
        for model in sorted(accuracy["model"].unique())
        for variant in sorted(accuracy["variant"].unique(), key=lambda v: (v != "base", v))
        for prompt in prompts
        if ((accuracy["model"] == model) & (accuracy["variant"] == variant) & (accuracy["prompt"] == prompt)).any()
    ]
    rows = accuracy.set_index(["model", "variant", "prompt", "lang"])
    panel_width = max(1.3, 0.3 * len(order) + 0.2)  # room for the panel titles with few languages
    figure, axes = plt.subplots(
        1,
        len(DIAGNOSTICS),
        figsize=(2.4 + len(DIAGNOSTICS) * panel_width, 1.6 + 0.24 * len(keys)),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    cmap = plt.get_cmap("cividis")
    for ax, (column, title) in zip(axes[0], DIAGNOSTICS):
        values = rows[column] if column in rows.columns else pd.Series(np.nan, index=rows.index)
        warn = flagged(accuracy, column) if column in accuracy.columns else pd.Series(False, index=accuracy.index)
        warn = pd.Series(warn.to_numpy(), index=rows.index)
        grid = np.array([[values.get((*key, code), np.nan) for code in order] for key in keys], dtype=float)
        image = ax.imshow(grid, cmap=cmap, vmin=0, vmax=1, aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            text, colour = ("–", "black") if np.isnan(value) else (f"{100 * value:.0f}", _text_colour(cmap(value)))
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
            if warn.get((*keys[i], order[j]), False):
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=PALETTE[3], lw=1.6))
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(len(order)), labels=order, rotation=45, ha="right", rotation_mode="anchor", fontsize=7)
        ax.tick_params(length=0)
        ax.spines[:].set_visible(False)
    axes[0, 0].set_yticks(
        range(len(keys)),
        labels=[
            f"{model} · {VARIANT_NAMES.get(variant, variant)} · {PROMPT_NAMES.get(prompt, prompt)}"
            for model, variant, prompt in keys
        ],
        fontsize=7,
    )
    bar = figure.colorbar(image, ax=axes, shrink=0.8, label="share (%)", pad=0.01, aspect=30)
    bar.ax.yaxis.set_major_formatter(lambda value, _: f"{100 * value:.0f}")
    return figure


# The knowledge figure's measures per model x variant x language group: (label, prompt
# of the accuracy.csv row, its column). The debiased accuracy and binding consistency are
# columns of the choice rows where the option rotations were scored.
KNOWLEDGE_MEASURES = (
    ("strict accuracy (direct)", "direct", "accuracy"),
    ("letter choice", paths.CHOICE_PROMPT, "accuracy"),
    ("debiased letter", paths.CHOICE_PROMPT, "debiased_accuracy"),
    ("cloze", paths.CLOZE_PROMPT, "accuracy"),
    ("binding consistency", paths.CHOICE_PROMPT, "binding_consistency"),
)


def knowledge_figure(accuracy: pd.DataFrame, languages: dict[str, Language]):
    """One panel per model (rows) x variant (columns): per language group, the mean over
    its languages of each KNOWLEDGE_MEASURES score, with chance (0.25) dashed. A measure
    the tree does not hold (older trees: no cloze cell, no rotations) has no bars and is
    named so in the legend."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    models = sorted(accuracy["model"].unique())
    variants = report_variants(accuracy["variant"])
    groups = [group for group in GROUPS if any(languages[code].group == group for code in accuracy["lang"].unique())]
    figure, axes = plt.subplots(
        len(models),
        len(variants),
        figsize=(2.4 + 2.4 * len(variants), 1.4 + 2.0 * len(models)),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    group = accuracy["lang"].map(lambda code: languages[code].group)
    width = 0.8 / len(KNOWLEDGE_MEASURES)
    shown = set()
    for (row, model), (col, variant) in itertools.product(enumerate(models), enumerate(variants)):
        ax = axes[row, col]
        for k, (_, prompt, column) in enumerate(KNOWLEDGE_MEASURES):
            cell = (accuracy["model"] == model) & (accuracy["variant"] == variant) & (accuracy["prompt"] == prompt)
            if column not in accuracy.columns or accuracy.loc[cell, column].isna().all():
                continue
            means = accuracy.loc[cell, column].groupby(group[cell]).mean().reindex(groups)
            ax.bar(
                np.arange(len(groups)) + (k - (len(KNOWLEDGE_MEASURES) - 1) / 2) * width,
                means.to_numpy(float),
                width,
                color=PALETTE[k],
            )
            shown.add(k)
        ax.axhline(0.25, color="grey", lw=0.8, ls="--")
        ax.set_ylim(0, 1)
        ax.set_xticks(range(len(groups)), labels=groups)
        ax.set_title(f"{model} · {variant_title(variant)}", fontsize=9)
        if col == 0:
            ax.set_ylabel("share of items")
    handles = [
        Patch(color=PALETTE[k], label=label if k in shown else f"{label} (not in this tree)")
        for k, (label, _, _) in enumerate(KNOWLEDGE_MEASURES)
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False, title="dashed: chance (0.25)")
    return figure


def plot_cells(
    accuracy: pd.DataFrame, languages: dict[str, Language], column: str, ylabel: str, path: Path, chance: float | None
) -> None:
    _save(cells_figure(accuracy, languages, column, ylabel, chance), path)


def _cell_name(model: str, variant: str, prompt: str) -> str:
    return f"{model}, {VARIANT_NAMES.get(variant, variant)}, {PROMPT_NAMES.get(prompt, prompt)} prompt"


def format_warnings(accuracy: pd.DataFrame) -> list[str]:
    """One line per model x variant x prompt naming its languages where the accuracy is
    a format artefact: the same label for most items (top share >= 0.6 with >= 90%
    of outputs stated) or outputs mostly cut by the token budget (> 50%)."""
    lines = []
    for (model, variant, prompt), rows in accuracy.groupby(["model", "variant", "prompt"], sort=True):
        cell = _cell_name(str(model), str(variant), str(prompt))
        constant = rows[(rows["top_choice_share"] >= CONSTANT_TOP_SHARE) & (rows["parse_rate"] >= CONSTANT_MIN_PARSED)]
        if len(constant):
            shares = ", ".join(
                f"{code} {100 * share:.0f}%" for code, share in zip(constant["lang"], constant["top_choice_share"])
            )
            lines.append(
                f"{cell}: the same label for most items in {len(constant)} language(s) "
                f"(share of the most frequent stated label: {shares}); accuracy there measures a constant "
                "answer, not reading"
            )
        truncated = rows[rows["truncation_rate"] > TRUNCATED_SHARE]
        if len(truncated):
            shares = ", ".join(
                f"{code} {100 * share:.0f}%" for code, share in zip(truncated["lang"], truncated["truncation_rate"])
            )
            lines.append(
                f"{cell}: most outputs cut by the token budget in {len(truncated)} language(s) "
                f"({shares}); accuracy there measures truncation, not reasoning"
            )
    return lines


def resampled_units(notes: pd.DataFrame | None) -> str:
    """What effects.csv's intervals resample, as notes.csv's methods name it
    (xlt.stats.notes.unit_name): passages, or items where every passage has one question
    (the default's fixture); "passages" where notes.csv is not given."""
    methods = notes["method"].astype(str) if notes is not None else pd.Series([], dtype=str)
    units = [unit for unit in ("passages", "items") if methods.str.contains(BOOTSTRAP_OVER + unit, regex=False).any()]
    return " or ".join(units) or "passages"


def _points(row) -> str:
    """The estimate in points with its interval; "no interval" where it is NaN (too few
    passages), as the verdicts say."""

    def signed(value):
        return f"{100 * value:+.1f}".replace("-", "−")

    if not np.isfinite(row["estimate"]):
        return "no estimate"
    if not (np.isfinite(row["ci_low"]) and np.isfinite(row["ci_high"])):
        return f"{signed(row['estimate'])} points (no interval)"
    return f"{signed(row['estimate'])} points [{signed(row['ci_low'])}, {signed(row['ci_high'])}]"


# The readings of the knowledge part of a fine-tuning gain (xlt.stats.cells.DECOMPOSITIONS), the
# default first: (name in effects.csv, its knowledge row prefix, its format row prefix).
KNOWLEDGE_READINGS = (
    ("cloze", "the cloze score (option texts, no letters)", "ft_gain_knowledge_cloze", "ft_gain_format_cloze"),
    (
        "debiased",
        "the debiased letter choice (four option rotations)",
        "ft_gain_knowledge_debiased",
        "ft_gain_format_debiased",
    ),
    (
        "control",
        "the format-only control (fine-tuned minus control)",
        "ft_gain_knowledge_control",
        "ft_gain_format_control",
    ),
    ("choice", "the letter choice at the answer position", "ft_gain_choice", "ft_gain_format"),
)
UNREADABLE = "knowledge score unreadable in"


def _direction(row) -> str:
    if not (np.isfinite(row["ci_low"]) and np.isfinite(row["ci_high"])):
        return "undetermined"
    return "a gain" if row["ci_low"] > 0 else "a loss" if row["ci_high"] < 0 else "no detectable change"


def knowledge_lines(effects: pd.DataFrame, notes: pd.DataFrame | None, models: list[str]) -> list[str]:
    """Per model (and source, named when there are several), in words with intervals:
    the fine-tuning gain on the targets (direct prompt) and its knowledge part under each
    reading, the cloze score first (the default), each reading's format part, and whether
    the readings agree. A reading whose knowledge score is at chance or one label in some
    cell (notes.csv) is named so and left out of the agreement: it is not "knowledge +0"."""
    parts = {source: rows for source, rows in rows_by_source(effects).items() if source != ""}
    noted = {}
    if notes is not None and len(notes):
        notes = notes[notes["table"] == "effects"].fillna("")
        sources = notes[paths.SOURCE_COLUMN] if paths.SOURCE_COLUMN in notes else pd.Series("", index=notes.index)
        noted = {
            (source, model, prompt, effect): note
            for source, model, prompt, effect, note in zip(
                sources, notes["model"], notes["prompt"], notes["effect"], notes["note"]
            )
        }
    lines = []
    for source, source_rows in parts.items():
        rows = source_rows[source_rows["prompt"] == "direct"].set_index(["model", "effect"])
        for model in models:
            who = f"{model}, fine-tuned on {source}" if len(parts) > 1 else model
            total = rows.loc[(model, "ft_gain_targets")] if (model, "ft_gain_targets") in rows.index else None
            said = [f"fine-tuning gain on the targets (direct prompt) {_points(total)}"] if total is not None else []
            found, missing = {}, []
            for reading, title, knowledge_name, format_name in KNOWLEDGE_READINGS:
                key = (model, f"{knowledge_name}_targets")
                if key not in rows.index:
                    missing.append(reading)
                    continue
                knowledge, form = rows.loc[key], rows.loc[(model, f"{format_name}_targets")]
                note = noted.get(
                    (source if paths.SOURCE_COLUMN in effects else "", model, "direct", f"{knowledge_name}_targets"), ""
                )
                text = (
                    f"by {title}{' (default)' if reading == 'cloze' else ''} the knowledge part is "
                    f"{_points(knowledge)}, the format part {_points(form)}"
                )
                if UNREADABLE in note:
                    cells = note.split(UNREADABLE, 1)[1].split(";")[0].strip(" :")
                    text += f", but that score is at chance or one label in {cells}: not evidence of knowledge +0"
                    found[reading] = "unreadable"
                else:
                    found[reading] = _direction(knowledge)
                said.append(text)
            # Each group's value named after its own group: a tree whose control languages
            # have no cells (allowed missing) has the related row alone.
            control = [
                f"{_points(rows.loc[(model, f'control_gain_{group}')])} on {where}"
                for group, where in (("related", "related targets"), ("control", "controls"))
                if (model, f"control_gain_{group}") in rows.index
            ]
            if control:
                said.append("the control adapter's own gain (format alone) is " + " and ".join(control))
            readable = {
                reading: direction
                for reading, direction in found.items()
                if direction not in ("unreadable", "undetermined")
            }
            if len(set(readable.values())) == 1 and len(readable) > 1:
                said.append(f"the readings {', '.join(readable)} agree: {next(iter(readable.values()))} in knowledge")
            elif len(readable) > 1:
                said.append(
                    "the readings disagree: "
                    + ", ".join(f"{reading} {direction}" for reading, direction in readable.items())
                )
            elif readable:
                reading, direction = next(iter(readable.items()))
                said.append(f"only the {reading} reading is readable: {direction} in knowledge")
            if missing:
                said.append(f"no {', '.join(missing)} reading (its cells are missing: notes.csv says which)")
            lines.append(f"{who}: " + "; ".join(said) + ".")
    return lines


def group_gains_figure(effects: pd.DataFrame, margin: float, *, confidence: float):
    """Per model: the gain on the source, the related targets and the controls, and the
    related - control difference, with intervals (at `confidence`, stats.confidence);
    one panel per kind of gain."""
    plt = _pyplot()
    models = sorted(set(effects["model"]) - {paths.POOLED_MODEL})
    panels = [
        panel
        for panel in GAIN_PANELS
        if ((effects["prompt"] == panel[1]) & effects["effect"].str.startswith(panel[2])).any()
    ]
    figure, axes = plt.subplots(
        1,
        len(panels),
        figsize=(1.6 + 2.1 * len(panels), 1.6 + 0.55 * len(models)),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    offsets = np.linspace(-0.27, 0.27, len(GAIN_SERIES))
    handles = {}
    for ax, (title, prompt, prefix, difference) in zip(axes[0], panels):
        rows = effects[effects["prompt"] == prompt].set_index(["model", "effect"])
        names = {
            "source": f"{prefix}_source",
            "related": f"{prefix}_related",
            "control": f"{prefix}_control",
            "difference": difference,
        }
        band = ax.axvspan(-margin, margin, color="0.88", lw=0, label=f"±{percent(margin)}-point equivalence margin")
        ax.axvline(0, color="black", lw=0.8)
        for k, (series, label) in enumerate(GAIN_SERIES):
            keys = [(model, names[series]) for model in models]
            present = [i for i, key in enumerate(keys) if key in rows.index]
            if not present:
                continue
            values = rows.loc[[keys[i] for i in present]]
            handles[label] = ax.errorbar(
                values["estimate"],
                np.array(present) + offsets[k],
                xerr=[values["estimate"] - values["ci_low"], values["ci_high"] - values["estimate"]],
                fmt=MARKERS[k],
                color=PALETTE[k],
                markersize=5,
                capsize=2,
                lw=1,
                label=label,
            )
        handles.setdefault("margin", band)
        ax.set_title(title, loc="left")
        _points_axis(ax.xaxis)
        ax.grid(axis="x", color="0.9", lw=0.6)
        ax.set_axisbelow(True)
    axes[0, 0].set_yticks(range(len(models)), labels=models)
    axes[0, 0].set_ylim(len(models) - 0.5, -0.5)
    figure.supxlabel(f"change in accuracy (percentage points), {percent(confidence)}% interval", fontsize=9)
    figure.legend(
        list(handles.values()),
        [handle.get_label() for handle in handles.values()],
        loc="outside upper center",
        ncol=len(handles),
        frameon=False,
    )
    return figure


def plot_group_gains(effects: pd.DataFrame, margin: float, path: Path, *, confidence: float) -> None:
    _save(group_gains_figure(effects, margin, confidence=confidence), path)


def alignment_figure(gains: pd.DataFrame):
    """Fine-tuning gain against CoT gain: small marks per target language, a large one
    per model (its mean over the targets)."""
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(7.0, 4.6), layout="constrained")
    ft = gains[(gains["gain"] == "ft_gain") & (gains["prompt"] == "direct") & (gains["group"] != "source")]
    cot = gains[(gains["gain"] == "cot_gain") & (gains["group"] != "source")]
    merged = ft.merge(cot, on=["model", "lang"], suffixes=("_ft", "_cot"))
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.axline((0, 0), slope=1, color="0.4", lw=0.8, ls=":", label="equal gains")
    for k, (model, rows) in enumerate(merged.groupby("model", sort=True)):
        style = {"color": PALETTE[k % len(PALETTE)], "marker": MARKERS[k % len(MARKERS)]}
        ax.scatter(rows["estimate_cot"], rows["estimate_ft"], s=16, alpha=0.5, linewidths=0, **style)
        ax.scatter(
            rows["estimate_cot"].mean(),
            rows["estimate_ft"].mean(),
            s=90,
            edgecolors="black",
            linewidths=0.8,
            label=model,
            **style,
        )
    ax.set_xlabel("CoT gain: base model, CoT − direct (percentage points)")
    ax.set_ylabel("fine-tuning gain: direct prompt,\nfine-tuned − base (percentage points)")
    _points_axis(ax.xaxis)
    _points_axis(ax.yaxis)
    ax.legend(
        loc="center left",
        bbox_to_anchor=(1.02, 0.5),
        frameon=False,
        title="large: model mean over targets\nsmall: one target language",
        title_fontsize=8,
        alignment="left",
    )
    return figure


def plot_alignment(gains: pd.DataFrame, path: Path) -> None:
    _save(alignment_figure(gains), path)


P_COLUMNS = ("p_value", "p_adjusted", "equivalence_p", "equivalence_p_adjusted")


def _p_shown(frame: pd.DataFrame, missing: str) -> pd.DataFrame:
    """The p-value columns as text at three decimals, and those that would print 0.000 (a
    sign-flip p of 1/10001) as "<0.001": no test here gives p = 0."""

    def shown(p: float) -> str:
        return missing if pd.isna(p) else "<0.001" if p < 0.0005 else f"{p:.3f}"

    return frame.assign(**{column: frame[column].map(shown) for column in P_COLUMNS if column in frame})


def _markdown(frame: pd.DataFrame) -> str:
    return _p_shown(frame, "nan").to_markdown(index=False, floatfmt=".3f")


_PAGE_STYLE = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 14px; color: #222; margin: 1.5em; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 1.5em; }
li { margin: 0.4em 0; max-width: 60em; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #f0f0f0; }
"""


def _html_table(frame: pd.DataFrame) -> str:
    return _p_shown(frame, "–").to_html(index=False, float_format=lambda value: f"{value:.3f}", na_rep="–", border=0)


def html_page(title: str, parts: list[str]) -> str:
    """A self-contained page, as `snakemake --report` shows an HTML item in a frame."""
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_PAGE_STYLE}</style></head>\n<body><h1>{escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def write_tables(
    verdicts: list[str],
    warnings: list[str],
    accuracy: pd.DataFrame,
    wide: pd.DataFrame,
    effects: pd.DataFrame,
    alignment: pd.DataFrame,
    out_dir: Path,
    *,
    confidence: float,
) -> None:
    """The report's tables as HTML pages (the report shows HTML items; CSV only downloads);
    `confidence`: stats.confidence, that of accuracy.csv's intervals."""
    differences = effects[effects["effect"].isin(["relatedness", "cot_relatedness", INTERACTION])]
    pages = {
        "verdicts": (
            "Verdicts",
            [
                "<ul>",
                *(f"<li>{escape(line)}</li>" for line in verdicts),
                "</ul>",
                "<h2>Format warnings</h2>",
                "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in warnings) + "</ul>"
                if warnings
                else "<p>None.</p>",
                "<h2>The differences they rest on</h2>",
                _html_table(differences),
            ],
        ),
        "accuracy": (
            "Accuracy",
            [
                _html_table(wide),
                f"<h2>With {percent(confidence)}% intervals and parse rate</h2>",
                _html_table(accuracy),
            ],
        ),
        "effects": ("Effects", [_html_table(effects)]),
        "alignment": ("Alignment across models", [_html_table(alignment)]),
    }
    for name, (title, parts) in pages.items():
        write_text(html_page(title, parts), out_dir / paths.REPORT_TABLES[name])


def write_report(
    accuracy: pd.DataFrame,
    effects: pd.DataFrame,
    alignment: pd.DataFrame,
    gains: pd.DataFrame,
    languages: dict[str, Language],
    margin: float,
    out_dir: str | Path,
    *,
    alpha: float,
    proximity_margin: float,
    recipes: dict[str, dict] | None = None,
    provenance: dict | None = None,
    notes: pd.DataFrame | None = None,
    proximity: pd.DataFrame | None = None,
) -> None:
    """`alpha`: the statistics' level (1 - stats.confidence), which the verdicts judge at
    and whose TOST interval they quote. `recipes`: model -> its fine-tuning recipe
    (xlt.recipes); `provenance`: the content of provenance.json; `proximity`:
    proximity.csv, for the gain against proximity (xlt.proximity_report). Each is a
    section of summary.md when given. `notes`: notes.csv, whose notes on knowledge scores
    that cannot show knowledge the summary repeats, and the reasons for missing intervals
    the verdicts give. `proximity_margin`: the TOST margin of a proximity slope's verdict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_cells(accuracy, languages, "accuracy", "accuracy", out_dir / paths.REPORT_PLOTS["accuracy"], chance=0.25)
    plot_cells(accuracy, languages, "parse_rate", "parse rate", out_dir / paths.REPORT_PLOTS["parse_rate"], chance=None)
    _save(diagnostics_figure(accuracy, languages), out_dir / paths.REPORT_PLOTS["diagnostics"])
    _save(knowledge_figure(accuracy, languages), out_dir / paths.REPORT_PLOTS["knowledge"])
    # The plots show the first source's rows; every source's are in the tables.
    first = next(source for source in rows_by_source(effects) if source != "")
    confidence = 1 - alpha
    plot_group_gains(
        rows_by_source(effects)[first], margin, out_dir / paths.REPORT_PLOTS["gains"], confidence=confidence
    )
    plot_alignment(rows_by_source(gains)[first], out_dir / paths.REPORT_PLOTS["alignment"])

    models = sorted(accuracy["model"].unique())
    verdicts = study_verdicts(effects, models, margin, alpha=alpha, proximity_margin=proximity_margin, notes=notes)
    warnings = format_warnings(accuracy)
    wide = accuracy.pivot_table(index=["model", "lang"], columns=["variant", "prompt"], values="accuracy").reset_index()
    wide.columns = [
        " / ".join(c for c in column if c) if isinstance(column, tuple) else column for column in wide.columns
    ]
    sections = [
        "# Cross-lingual transfer: results",
        "## Verdicts (gain on related targets minus gain on controls; the primary test first, then secondary rows)",
        "\n".join(f"- {line}" for line in verdicts),
        "## Format warnings (cells whose accuracy is a format artefact)",
        "\n".join(f"- {line}" for line in warnings)
        if warnings
        else "No cell answers one label for most items or is mostly cut by the token budget.",
        "## Knowledge and format in the fine-tuning gain",
        "\n".join(f"- {line}" for line in knowledge_lines(effects, notes, models)),
        f"![knowledge readings per model, variant and language group]({paths.REPORT_PLOTS['knowledge']})",
        "## Accuracy (model x language x variant x prompt)",
        _markdown(wide),
        f"![accuracy]({paths.REPORT_PLOTS['accuracy']})",
        "## Parse rate (share of outputs with a recognisable answer)",
        f"![parse rate]({paths.REPORT_PLOTS['parse_rate']})",
        "## Format diagnostics per cell (framed: a warning above)",
        f"![format diagnostics]({paths.REPORT_PLOTS['diagnostics']})",
        f"## Effects (bootstrap over {resampled_units(notes)}; p from sign-flips of the same units or "
        "McNemar's exact test, notes.csv names each row's; the primary test Holm-adjusted across models, "
        "secondary tests within model x prompt)",
        _markdown(effects),
        f"![gains by group]({paths.REPORT_PLOTS['gains']})",
        "## Alignment across models",
        _markdown(alignment),
        f"![fine-tuning gain against CoT gain]({paths.REPORT_PLOTS['alignment']})",
        "## Full accuracy table",
        _markdown(accuracy),
    ]
    if proximity is not None:
        from .proximity_report import proximity_figure, proximity_lines

        _save(
            proximity_figure(gains, proximity, effects, _pyplot(), _points_axis),
            out_dir / paths.REPORT_PLOTS["proximity"],
        )
        sections[sections.index("## Alignment across models") : sections.index("## Alignment across models")] = [
            "## Gain against genealogical proximity (one point per target language; the slope adjusted "
            "for baseline and script)",
            "\n".join(f"- {line}" for line in proximity_lines(effects, proximity, gains, notes)),
            f"![gain against proximity]({paths.REPORT_PLOTS['proximity']})",
        ]
    if recipes:
        sections += [
            "## Fine-tuning recipe of each model",
            _markdown(pd.DataFrame([{"model": name, **recipe} for name, recipe in recipes.items()])),
        ]
    if provenance:
        sections += [
            "## Provenance (results/provenance.json)",
            "\n".join(f"- {line}" for line in provenance_lines(provenance)),
        ]
    write_text("\n\n".join(sections) + "\n", out_dir / paths.REPORT_SUMMARY)
    write_tables(verdicts, warnings, accuracy, wide, effects, alignment, out_dir, confidence=confidence)
