"""The statistical comparison: fine-tuning and chain-of-thought gains by language
group, the relatedness difference in differences, and the across-model alignment of
the two gains.

Items are parallel across languages (the same passage and question, translated), so
every effect is a mean over items of a per-item quantity, and uncertainty comes from
resampling whole items: one bootstrap index matrix is shared by every effect, model
and language, which keeps all comparisons paired.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import XltError
from .languages import Language
from .paths import ALIGNMENT_COLUMNS, EFFECTS_COLUMNS

SIGN_FLIPS = 10_000


@dataclass(frozen=True)
class StatsSettings:
    bootstrap_samples: int = 2000
    confidence: float = 0.95
    equivalence_margin: float = 0.05
    seed: int = 0

    @classmethod
    def from_config(cls, block: dict) -> "StatsSettings":
        return cls(**{key: block[key] for key in ("bootstrap_samples", "confidence", "equivalence_margin", "seed")})


@dataclass(frozen=True)
class Cell:
    variant: str
    prompt: str


BASE_DIRECT, BASE_COT = Cell("base", "direct"), Cell("base", "cot")


def correctness(items: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Model -> item x (variant, prompt, lang) matrix of 0/1, on the items every model
    and cell has (pairing needs the same items everywhere)."""
    matrices = {}
    for model, rows in items.groupby("model", sort=True):
        matrix = rows.pivot_table(index="item_id", columns=["variant", "prompt", "lang"], values="correct", aggfunc="first")
        matrices[model] = matrix.astype(float)
    common = set.intersection(*(set(m.dropna().index) for m in matrices.values()))
    if not common:
        raise XltError("no item has predictions in every model, variant, prompt and language; the comparison needs paired items")
    ordered = sorted(common)
    return {model: matrix.loc[ordered] for model, matrix in matrices.items()}


def _cell_langs(matrix: pd.DataFrame, cell: Cell, langs: list[str]) -> list[str]:
    return [lang for lang in langs if (cell.variant, cell.prompt, lang) in matrix.columns]


def per_item_gain(matrix: pd.DataFrame, after: Cell, before: Cell, langs: list[str]) -> np.ndarray | None:
    """Per item, the mean over `langs` of (after - before); None if a cell is missing."""
    present = [lang for lang in _cell_langs(matrix, after, langs) if lang in _cell_langs(matrix, before, langs)]
    if not present or len(present) < len(langs):
        return None
    after_values = matrix.loc[:, [(after.variant, after.prompt, lang) for lang in langs]].to_numpy()
    before_values = matrix.loc[:, [(before.variant, before.prompt, lang) for lang in langs]].to_numpy()
    return (after_values - before_values).mean(axis=1)


def per_item_accuracy(matrix: pd.DataFrame, cell: Cell, langs: list[str]) -> np.ndarray | None:
    if len(_cell_langs(matrix, cell, langs)) < len(langs):
        return None
    return matrix.loc[:, [(cell.variant, cell.prompt, lang) for lang in langs]].to_numpy().mean(axis=1)


def group_langs(languages: dict[str, Language]) -> dict[str, list[str]]:
    return {group: [c for c, lang in languages.items() if lang.group == group] for group in ("source", "related", "control")}


def model_effects(matrix: pd.DataFrame, languages: dict[str, Language]) -> list[tuple[str, str, np.ndarray]]:
    """(prompt, effect name, per-item values) for one model."""
    groups = group_langs(languages)
    effects = []
    for prompt in ("direct", "cot"):
        gains = {group: per_item_gain(matrix, Cell("ft", prompt), Cell("base", prompt), langs) for group, langs in groups.items() if langs}
        for group, values in gains.items():
            if values is not None:
                effects.append((prompt, f"ft_gain_{group}", values))
        if gains.get("related") is not None and gains.get("control") is not None:
            effects.append((prompt, "relatedness", gains["related"] - gains["control"]))
    cot = {group: per_item_gain(matrix, BASE_COT, BASE_DIRECT, langs) for group, langs in groups.items() if langs}
    for group, values in cot.items():
        if values is not None:
            effects.append(("cot", f"cot_gain_{group}", values))
    if cot.get("related") is not None and cot.get("control") is not None:
        effects.append(("cot", "cot_relatedness", cot["related"] - cot["control"]))
    return effects


def bootstrap_indices(n_items: int, settings: StatsSettings) -> np.ndarray:
    rng = np.random.default_rng(settings.seed)
    return rng.integers(0, n_items, size=(settings.bootstrap_samples, n_items))


def _interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return np.nan, np.nan
    return float(np.quantile(finite, tail)), float(np.quantile(finite, 1 - tail))


def sign_flip_p(values: np.ndarray, seed: int) -> float:
    """Two-sided randomization p-value of a paired mean: under no effect, swapping the
    two conditions within an item flips the sign of its difference."""
    estimate = abs(values.mean())
    if not np.any(values):
        return 1.0
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(SIGN_FLIPS, values.size))
    null = np.abs((signs * values).mean(axis=1))
    return float((1 + np.sum(null >= estimate - 1e-12)) / (SIGN_FLIPS + 1))


def tost_p(draws: np.ndarray, margin: float) -> float:
    """Equivalence p-value by inverting the bootstrap interval: the effect lies within
    (-margin, margin) at level p when both one-sided tails beyond the margins are at
    most p."""
    below = (1 + np.sum(draws <= -margin)) / (draws.size + 1)
    above = (1 + np.sum(draws >= margin)) / (draws.size + 1)
    return float(max(below, above))


def holm(p_values: list[float]) -> list[float]:
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        adjusted[finite] = multipletests(p[finite], method="holm")[1]
    return adjusted.tolist()


def effects_table(matrices: dict[str, pd.DataFrame], languages: dict[str, Language], settings: StatsSettings) -> pd.DataFrame:
    rows = []
    for model, matrix in matrices.items():
        indices = bootstrap_indices(len(matrix), settings)
        family_rows = []
        for prompt, effect, values in model_effects(matrix, languages):
            draws = values[indices].mean(axis=1)
            low, high = _interval(draws, settings.confidence)
            family_rows.append(
                {
                    "model": model,
                    "prompt": prompt,
                    "effect": effect,
                    "estimate": float(values.mean()),
                    "ci_low": low,
                    "ci_high": high,
                    "p_value": sign_flip_p(values, settings.seed),
                    "equivalence_p": tost_p(draws, settings.equivalence_margin),
                    "n_items": int(values.size),
                }
            )
        # Holm within one model and prompt: the family of tests a reader of that
        # model's verdict under that prompt looks at together.
        for prompt in ("direct", "cot"):
            family = [row for row in family_rows if row["prompt"] == prompt]
            for row, adjusted in zip(family, holm([row["p_value"] for row in family])):
                row["p_adjusted"] = adjusted
        rows.extend(family_rows)
    return pd.DataFrame(rows, columns=list(EFFECTS_COLUMNS))


def _correlation(x: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    """Row-wise correlation of two (draws x units) arrays."""
    if method == "spearman":
        from scipy.stats import rankdata

        x, y = rankdata(x, axis=-1), rankdata(y, axis=-1)
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((x * x).sum(axis=-1) * (y * y).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (x * y).sum(axis=-1) / denominator, np.nan)


def alignment_table(matrices: dict[str, pd.DataFrame], languages: dict[str, Language], settings: StatsSettings) -> pd.DataFrame:
    """Across models: does the fine-tuning gain go with the CoT gain, and with a weak
    baseline? Per model (the study's unit) and per model x target language (more
    points, not independent within a model). Intervals and p-values resample items."""
    targets = [code for code, lang in languages.items() if lang.is_target]
    units = {"models": [], "model_language": []}
    for model, matrix in matrices.items():
        series = {
            "ft_gain": per_item_gain(matrix, Cell("ft", "direct"), BASE_DIRECT, targets),
            "cot_gain": per_item_gain(matrix, BASE_COT, BASE_DIRECT, targets),
            "baseline": per_item_accuracy(matrix, BASE_DIRECT, targets),
        }
        if all(values is not None for values in series.values()):
            units["models"].append(series)
            for lang in targets:
                units["model_language"].append(
                    {
                        "ft_gain": per_item_gain(matrix, Cell("ft", "direct"), BASE_DIRECT, [lang]),
                        "cot_gain": per_item_gain(matrix, BASE_COT, BASE_DIRECT, [lang]),
                        "baseline": per_item_accuracy(matrix, BASE_DIRECT, [lang]),
                    }
                )
    n_models = len(units["models"])
    n_items = len(next(iter(matrices.values())))
    indices = bootstrap_indices(n_items, settings)
    rows = []
    for unit, members in units.items():
        for x_name, y_name in (("ft_gain", "cot_gain"), ("baseline", "ft_gain")):
            for method in ("pearson", "spearman"):
                statistic = f"{method}:{x_name}~{y_name}:{unit}"
                if len(members) < 3:
                    rows.append({"statistic": statistic, "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "n_models": n_models})
                    continue
                x = np.stack([m[x_name] for m in members])  # units x items
                y = np.stack([m[y_name] for m in members])
                estimate = float(_correlation(x.mean(axis=1)[None, :], y.mean(axis=1)[None, :], method)[0])
                draws = _correlation(x[:, indices].mean(axis=2).T, y[:, indices].mean(axis=2).T, method)
                low, high = _interval(draws, settings.confidence)
                finite = draws[np.isfinite(draws)]
                p = np.nan
                if np.isfinite(estimate) and finite.size:
                    # Percentile-bootstrap p-value: twice the share of draws across zero.
                    p = float(min(1.0, 2 * min((1 + np.sum(finite <= 0)), (1 + np.sum(finite >= 0))) / (finite.size + 1)))
                rows.append({"statistic": statistic, "estimate": estimate, "ci_low": low, "ci_high": high, "p_value": p, "n_models": n_models})
    return pd.DataFrame(rows, columns=list(ALIGNMENT_COLUMNS))


def gains_table(matrices: dict[str, pd.DataFrame], languages: dict[str, Language], settings: StatsSettings) -> pd.DataFrame:
    """Per model and language: the fine-tuning gain under each prompt and the CoT gain,
    with bootstrap intervals (for the report's per-language plots)."""
    rows = []
    for model, matrix in matrices.items():
        indices = bootstrap_indices(len(matrix), settings)
        comparisons = [("ft_gain", p, Cell("ft", p), Cell("base", p)) for p in ("direct", "cot")] + [("cot_gain", "cot", BASE_COT, BASE_DIRECT)]
        for code, lang in languages.items():
            for name, prompt, after, before in comparisons:
                values = per_item_gain(matrix, after, before, [code])
                if values is None:
                    continue
                low, high = _interval(values[indices].mean(axis=1), settings.confidence)
                rows.append(
                    {
                        "model": model, "lang": code, "group": lang.group, "family": lang.family, "script": lang.script,
                        "gain": name, "prompt": prompt, "before": float(per_item_accuracy(matrix, before, [code]).mean()),
                        "estimate": float(values.mean()), "ci_low": low, "ci_high": high, "n_items": int(values.size),
                    }
                )
    return pd.DataFrame(rows)


def compare(items: pd.DataFrame, languages: dict[str, Language], settings: StatsSettings) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """effects.csv, alignment.csv and gains.csv from item-level predictions."""
    unknown = sorted(set(items["lang"]) - set(languages))
    if unknown:
        raise XltError(f"predictions for language {unknown[0]}, which the config does not list")
    matrices = correctness(items)
    return (
        effects_table(matrices, languages, settings),
        alignment_table(matrices, languages, settings),
        gains_table(matrices, languages, settings),
    )
