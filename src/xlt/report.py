"""The report: markdown tables, PNG plots and a plain-language verdict per model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_path, write_text
from .languages import Language
from .verdict import verdict

CELLS = [("base", "direct"), ("ft", "direct"), ("base", "cot"), ("ft", "cot")]
CELL_COLORS = {("base", "direct"): "#9ecae1", ("ft", "direct"): "#2171b5", ("base", "cot"): "#fdae6b", ("ft", "cot"): "#d94801"}
GROUP_EFFECTS = ["ft_gain_source", "ft_gain_related", "ft_gain_control", "relatedness"]
PLOTS = {
    "accuracy": "accuracy.png",
    "parse_rate": "parse_rate.png",
    "gains": "gains_by_group.png",
    "alignment": "ft_vs_cot_gain.png",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.spines.top": False, "axes.spines.right": False, "savefig.dpi": 150})
    return plt


def _save(figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", bbox_inches="tight")


def plot_cells(accuracy: pd.DataFrame, languages: dict[str, Language], column: str, ylabel: str, path: Path, chance: float | None) -> None:
    """Grouped bars per language, one bar per variant x prompt, one panel per model."""
    plt = _pyplot()
    models = sorted(accuracy["model"].unique())
    order = [code for code in languages if code in set(accuracy["lang"])]
    figure, axes = plt.subplots(len(models), 1, figsize=(max(6, 1.1 * len(order) + 2), 2.8 * len(models)), squeeze=False)
    width = 0.8 / len(CELLS)
    for ax, model in zip(axes[:, 0], models):
        rows = accuracy[accuracy["model"] == model].set_index(["variant", "prompt", "lang"])
        for k, cell in enumerate(CELLS):
            keys = [(*cell, lang) for lang in order]
            present = [key in rows.index for key in keys]
            x = np.arange(len(order))[present] + (k - 1.5) * width
            values = np.array([rows.loc[key, column] for key, ok in zip(keys, present) if ok])
            kwargs = {}
            if column == "accuracy" and len(values):
                low = np.array([rows.loc[key, "ci_low"] for key, ok in zip(keys, present) if ok])
                high = np.array([rows.loc[key, "ci_high"] for key, ok in zip(keys, present) if ok])
                kwargs = {"yerr": np.vstack([values - low, high - values]), "capsize": 2, "error_kw": {"lw": 0.8}}
            ax.bar(x, values, width, label=f"{cell[0]} / {cell[1]}", color=CELL_COLORS[cell], **kwargs)
        if chance is not None:
            ax.axhline(chance, color="grey", lw=0.8, ls="--", label="chance")
        ax.set_xticks(np.arange(len(order)))
        ax.set_xticklabels([f"{code}\n{languages[code].group}" for code in order], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel(ylabel)
        ax.set_title(model, loc="left")
    axes[0, 0].legend(ncol=5, fontsize=8, loc="upper left", bbox_to_anchor=(0, 1.32), frameon=False)
    figure.tight_layout()
    _save(figure, path)
    plt.close(figure)


def plot_group_gains(effects: pd.DataFrame, margin: float, path: Path) -> None:
    """Fine-tuning gain by language group and the relatedness difference, with
    intervals and the equivalence margin."""
    plt = _pyplot()
    models = sorted(effects["model"].unique())
    figure, axes = plt.subplots(1, 2, figsize=(11, 0.6 * len(models) * len(GROUP_EFFECTS) + 1.5), sharex=True, squeeze=False)
    for ax, prompt in zip(axes[0], ("direct", "cot")):
        rows = effects[(effects["prompt"] == prompt) & effects["effect"].isin(GROUP_EFFECTS)]
        labels, y = [], 0
        for model in models:
            for effect in GROUP_EFFECTS:
                row = rows[(rows["model"] == model) & (rows["effect"] == effect)]
                if row.empty:
                    continue
                row = row.iloc[0]
                color = "#d94801" if effect == "relatedness" else "#2171b5"
                ax.errorbar(row["estimate"], y, xerr=[[row["estimate"] - row["ci_low"]], [row["ci_high"] - row["estimate"]]], fmt="o", color=color, capsize=3)
                labels.append(f"{model}: {effect.replace('ft_gain_', 'gain, ')}")
                y += 1
        ax.axvline(0, color="black", lw=0.8)
        ax.axvspan(-margin, margin, color="grey", alpha=0.15, label=f"±{margin:.0%} margin")
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("accuracy difference (fine-tuned − base)")
        ax.set_title(f"{prompt} prompt", loc="left")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    _save(figure, path)
    plt.close(figure)


def plot_alignment(gains: pd.DataFrame, path: Path) -> None:
    """Fine-tuning gain against CoT gain per model and target language."""
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(5.5, 4.5))
    ft = gains[(gains["gain"] == "ft_gain") & (gains["prompt"] == "direct") & (gains["group"] != "source")]
    cot = gains[(gains["gain"] == "cot_gain") & (gains["group"] != "source")]
    merged = ft.merge(cot, on=["model", "lang"], suffixes=("_ft", "_cot"))
    for model, rows in merged.groupby("model"):
        ax.scatter(rows["estimate_cot"], rows["estimate_ft"], label=model, s=25)
        ax.scatter(rows["estimate_cot"].mean(), rows["estimate_ft"].mean(), marker="*", s=160, edgecolor="black")
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("CoT gain (base: cot − direct)")
    ax.set_ylabel("fine-tuning gain (direct: ft − base)")
    ax.set_title("per target language; star = model mean", loc="left", fontsize=9)
    ax.legend(fontsize=8)
    figure.tight_layout()
    _save(figure, path)
    plt.close(figure)


def _markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".3f")


def write_report(accuracy: pd.DataFrame, effects: pd.DataFrame, alignment: pd.DataFrame, gains: pd.DataFrame, languages: dict[str, Language], margin: float, out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_cells(accuracy, languages, "accuracy", "accuracy", out_dir / PLOTS["accuracy"], chance=0.25)
    plot_cells(accuracy, languages, "parse_rate", "parse rate", out_dir / PLOTS["parse_rate"], chance=None)
    plot_group_gains(effects, margin, out_dir / PLOTS["gains"])
    plot_alignment(gains, out_dir / PLOTS["alignment"])

    models = sorted(accuracy["model"].unique())
    verdicts = [verdict(effects, model, prompt, margin) for model in models for prompt in ("direct", "cot")]
    verdicts += [verdict(effects, model, "cot", margin, "cot_relatedness") for model in models]
    wide = accuracy.pivot_table(index=["model", "lang"], columns=["variant", "prompt"], values="accuracy").reset_index()
    wide.columns = [" / ".join(c for c in column if c) if isinstance(column, tuple) else column for column in wide.columns]
    sections = [
        "# Cross-lingual transfer: results",
        "## Verdicts (gain on related targets minus gain on controls)",
        "\n".join(f"- {line}" for line in verdicts),
        "## Accuracy (model x language x variant x prompt)",
        _markdown(wide),
        f"![accuracy]({PLOTS['accuracy']})",
        "## Parse rate (share of outputs with a recognisable answer)",
        f"![parse rate]({PLOTS['parse_rate']})",
        "## Effects (bootstrap over items; p from item sign-flips; Holm within model x prompt)",
        _markdown(effects),
        f"![gains by group]({PLOTS['gains']})",
        "## Alignment across models",
        _markdown(alignment),
        f"![fine-tuning gain against CoT gain]({PLOTS['alignment']})",
        "## Full accuracy table",
        _markdown(accuracy),
    ]
    write_text("\n\n".join(sections) + "\n", out_dir / "summary.md")
