"""The report's view of the continuous design: each target's fine-tuning gain against its
genealogical proximity to the source, per model and source, with the fitted
`proximity_slope` and its interval (xlt.stats.proximity), languages labelled."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .paths import SOURCE_COLUMN
from .proximity import INTERACTION, SLOPE
from .reasons import NO_SLOPE
from .verdict import note_part

# Fewer targets than this make a slope's interval wide whatever the data (docs/statistics.md).
FEW_TARGETS = 30


def _slope_text(row: pd.Series | None, why: str = "") -> str:
    """The slope with its interval and p; "no slope", with notes.csv's reason where given."""
    if row is None or not np.isfinite(row["estimate"]):
        return f"no slope ({why})" if why else "no slope"
    interval = f"[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]" if np.isfinite(row["ci_low"]) else "no interval"
    return f"slope {row['estimate']:+.2f} {interval}, p={row['p_value']:.2g}"


def _slope_row(effects: pd.DataFrame, model: str, source: str) -> pd.Series | None:
    if SOURCE_COLUMN not in effects.columns:  # an older tree's, from before the proximity rows
        return None
    rows = effects[
        (effects["model"] == model)
        & (effects[SOURCE_COLUMN] == source)
        & (effects["prompt"] == "direct")
        & (effects["effect"] == SLOPE)
    ]
    return rows.iloc[0] if len(rows) else None


def proximity_figure(gains: pd.DataFrame, proximity: pd.DataFrame, effects: pd.DataFrame, plt, points_axis):
    """One panel per model (rows) and source (columns): each target's fine-tuning gain
    under the direct prompt (with its interval) against its proximity to the source,
    labelled with its code, and a line of the fitted slope through the targets' means
    (the slope is adjusted for baseline and script; the line shows its size). `plt` and
    `points_axis` are the report's pyplot and its percentage-point axis format."""
    if SOURCE_COLUMN not in gains.columns:  # an older tree's gains, of its one source
        gains = gains.assign(**{SOURCE_COLUMN: proximity["source"].iloc[0]})
    ft = gains[(gains["gain"] == "ft_gain") & (gains["prompt"] == "direct")]
    merged = ft.merge(proximity, left_on=[SOURCE_COLUMN, "lang"], right_on=["source", "target"])
    models = sorted(merged["model"].unique())
    sources = list(dict.fromkeys(proximity["source"]))
    figure, axes = plt.subplots(
        max(len(models), 1),
        len(sources),
        figsize=(4.2 * len(sources), 3.2 * max(len(models), 1)),
        squeeze=False,
        layout="constrained",
    )
    for i, model in enumerate(models):
        for j, source in enumerate(sources):
            ax = axes[i][j]
            rows = merged[(merged["model"] == model) & (merged[SOURCE_COLUMN] == source)]
            ax.axhline(0, color="0.6", lw=0.8)
            ax.errorbar(
                rows["genealogical"],
                rows["estimate"],
                yerr=[rows["estimate"] - rows["ci_low"], rows["ci_high"] - rows["estimate"]],
                fmt="o",
                ms=4,
                color="#4477aa",
                ecolor="0.75",
                elinewidth=0.8,
            )
            if len(rows) <= 40:
                for _, row in rows.iterrows():
                    ax.annotate(
                        row["lang"],
                        (row["genealogical"], row["estimate"]),
                        xytext=(3, 2),
                        textcoords="offset points",
                        fontsize=6,
                    )
            fitted = _slope_row(effects, model, source)
            if fitted is not None and np.isfinite(fitted["estimate"]) and len(rows):
                ax.axline(
                    (rows["genealogical"].mean(), rows["estimate"].mean()),
                    slope=fitted["estimate"],
                    color="#cc6677",
                    lw=1.2,
                )
            ax.set_xlim(-0.05, 1.05)
            ax.set_title(f"{model}, source {source}\n{_slope_text(fitted)}", fontsize=8)
            ax.set_xlabel(f"genealogical proximity to {source}")
            ax.set_ylabel("fine-tuning gain, direct (points)")
            points_axis(ax.yaxis)
    return figure


def _gain_langs(gains: pd.DataFrame | None, model: str, prompt: str, source: str) -> set[str] | None:
    """The languages with a fine-tuning gain of `model` under `prompt` after `source` in
    gains.csv (both cells there); None without gains.csv (every target counted)."""
    if gains is None:
        return None
    rows = gains[(gains["model"] == model) & (gains["gain"] == "ft_gain") & (gains["prompt"] == prompt)]
    if SOURCE_COLUMN in rows.columns:
        rows = rows[rows[SOURCE_COLUMN] == source]
    return set(rows["lang"])


def _units(row: pd.Series, proximity: pd.DataFrame, gains: pd.DataFrame | None) -> int:
    """The target languages a fitted row regresses on (xlt.stats.proximity): a slope, its
    source's targets with Glottolog metadata and both cells; an interaction, those targets
    that are no source and have both cells after the first source and after the other one."""
    # A target without Glottolog metadata has a row without a proximity, and no part in a fit.
    measured = proximity[proximity["genealogical"].notna()] if "genealogical" in proximity else proximity
    targets = {str(source): set(group) for source, group in measured.groupby("source", sort=False)["target"]}
    sources = list(dict.fromkeys(map(str, proximity["source"])))
    targets = {source: targets.get(source, set()) for source in sources}
    model, prompt, effect = str(row["model"]), str(row["prompt"]), str(row["effect"])
    if effect == SLOPE:
        named = row.get(SOURCE_COLUMN)
        source = str(named) if isinstance(named, str) and named in targets else str(sources[0])
        found = targets[source]
        having = _gain_langs(gains, model, prompt, source)
        return len(found if having is None else found & having)
    other = effect.removeprefix(f"{INTERACTION}_") if effect != INTERACTION else sources[-1]
    pair = [sources[0], other if other in targets else sources[-1]]
    shared = set.intersection(*(targets[source] for source in pair)) - set(sources)
    for source in pair:
        having = _gain_langs(gains, model, prompt, source)
        shared = shared if having is None else shared & having
    return len(shared)


def proximity_lines(
    effects: pd.DataFrame,
    proximity: pd.DataFrame,
    gains: pd.DataFrame | None = None,
    notes: pd.DataFrame | None = None,
) -> list[str]:
    """Summary sentences: each fitted slope (and interaction) with its interval, or why it
    was not fitted (from `notes`, notes.csv), and that few targets make them wide. `gains`
    (gains.csv) says which targets have both cells, so that a tree with cells missing
    (allowed) is counted as the rows were fitted."""
    lines = []
    rows = effects[effects["effect"].astype(str).str.startswith((SLOPE, INTERACTION))]
    for _, row in rows.iterrows():
        source = row.get(SOURCE_COLUMN)
        where = f"source {source}" if isinstance(source, str) and source else "across sources"
        tost = f", TOST p={row['equivalence_p']:.2g}" if np.isfinite(row["equivalence_p"]) else ""
        text = _slope_text(row, note_part(notes, row.to_dict(), NO_SLOPE))
        lines.append(f"{row['model']} / {row['prompt']} / {row['effect']} ({where}): {text}{tost}")
    fitted = rows[np.isfinite(rows["estimate"].astype(float))]
    if not len(fitted) or not len(proximity):
        return lines
    interacts = fitted["effect"].astype(str).str.startswith(INTERACTION)
    slopes = sorted({_units(row, proximity, gains) for _, row in fitted[~interacts].iterrows()})
    shared = sorted({_units(row, proximity, gains) for _, row in fitted[interacts].iterrows()})
    if min(slopes + shared) < FEW_TARGETS:

        def counted(counts: list[int]) -> str:
            return f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"

        # The interaction regresses on the targets of every source, none of them a source.
        interaction = f"the {INTERACTION} rows on the {counted(shared)} targets every source shares" if shared else ""
        rest = ", ".join(
            part for part in (f"{counted(slopes)} target languages per source" if slopes else "", interaction) if part
        )
        lines.append(
            f"These slopes rest on {rest}: their intervals "
            "are wide by design, and no claim about families in general follows from them "
            "(config/belebele-all.yaml has 120 targets)."
        )
    return lines
