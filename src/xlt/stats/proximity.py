"""Relatedness measured: the fine-tuning gain regressed on genealogical proximity across
target languages (docs/statistics.md, "Proximity as a continuous predictor").

For one model, source and prompt, each target language is one unit: its gain (fine-tuned
minus base accuracy over all its questions), its proximity to the source
(xlt.proximity), its baseline accuracy (the headroom: a weak baseline gains more,
whatever its relatedness) and whether it shares the source's script. `proximity_slope`
is the coefficient of proximity in the least-squares fit gain ~ 1 + proximity +
baseline + same_script across the targets: accuracy gained per unit of proximity (0:
another family, 1: the source's own language). With several sources,
`proximity_interaction` fits the first source's gain minus another's, on the same
targets (none of them a source), on the difference of their proximities, adjusted for
baseline and the difference in script sharing: each target's own difficulty cancels,
as in `relatedness_interaction`.

The units are languages, so 120 targets are 120 units, not 120 x 900 rows: a language's
questions (and the passages they share) enter only through its gain. The interval is a
bootstrap of whole target languages (expanded percentile); the p-value permutes the
proximities across the targets after adjusting them for the covariates (Smith's
permutation, with the slope studentized by its heteroscedasticity-robust standard
error: exact up to 8 targets); the TOST asks whether the bootstrap's 1 - 2 alpha
interval lies inside +-`stats.proximity_margin`. Simulated (`python -m xlt.simulate
--design proximity`), the language bootstrap's spread matches the slope's true spread;
adding a passage bootstrap on top widened it 1.6-fold, and permuting raw proximities
(Manly's method) rejected 12% of true nulls where Arabic-script dialects make proximity
and script collinear. The binary related/control tests (`relatedness`,
`relatedness_interaction`) stay beside these rows.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..languages import Language, language_metadata, source_languages
from ..paths import finetuned_variants
from ..proximity import INTERACTION, MIN_TARGETS, SLOPE, genealogical_proximity, measured, slope_fits
from ..reasons import NO_INTERVAL, NO_SLOPE
from ..stattests import (
    expanded_confidence,
    holm,
    minimum_clusters,
    percentile_interval,
    permutation_p,
    unit_permutations,
)
from .cells import FT_COT, FT_DIRECT, ModelCells, correctness
from .effects import ModelContext, Row
from .notes import notes_row, too_few_note
from .settings import StatsSettings


def _residuals(values: np.ndarray, design: np.ndarray) -> np.ndarray:
    """`values` (..., n) less their least-squares fit on `design` (..., n, k)."""
    coefficients = np.linalg.pinv(design) @ values[..., None]
    return values - (design @ coefficients)[..., 0]


def _with_intercept(covariates: np.ndarray) -> np.ndarray:
    return np.concatenate([np.ones((*covariates.shape[:-1], 1)), covariates], axis=-1)


def partial_fit(y: np.ndarray, x: np.ndarray, covariates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The coefficient of x in the least-squares fit y ~ 1 + x + covariates, and its
    heteroscedasticity-robust (HC0) standard error (Frisch-Waugh-Lovell: x and y
    residualised on the intercept and covariates); NaN where x is constant given them.
    Leading axes broadcast (resamples, permutations); n is the last axis of y and x,
    covariates are (..., n, c)."""
    design = _with_intercept(covariates)
    x_left, y_left = _residuals(x, design), _residuals(y, design)
    spread = np.sum(x_left**2, axis=-1)
    scale = np.sum((x - x.mean(axis=-1, keepdims=True)) ** 2, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(spread > 1e-9 * np.maximum(scale, 1e-12), np.sum(x_left * y_left, axis=-1) / spread, np.nan)
        residual = y_left - slope[..., None] * x_left
        return slope, np.sqrt(np.sum(x_left**2 * residual**2, axis=-1)) / spread


def partial_slope(y: np.ndarray, x: np.ndarray, covariates: np.ndarray) -> np.ndarray:
    return partial_fit(y, x, covariates)[0]


def slope_row(
    context: tuple[str, str, str, int],
    y: np.ndarray,
    x: np.ndarray,
    covariates: dict[str, np.ndarray],
    targets: list[str],
    settings: StatsSettings,
    *,
    with_interval: bool = True,
) -> Row:
    """One slope of y on x across `targets`, adjusted for `covariates` (name -> one value
    per target); `context` is (model, prompt, effect, n_items). `with_interval` False
    where the passages are too few for any interval (Resampling.too_few): each target's
    gain then rests on those few passages, so the slope has no interval and no TOST
    (compare's note says why on the row), as every other row of the comparison."""
    model, prompt, effect, n_items = context
    n, alpha, margin = len(targets), settings.alpha, settings.proximity_margin
    # A covariate constant across the targets is the intercept again.
    kept = {name: values for name, values in covariates.items() if np.ptp(values) > 0}
    z = np.column_stack(list(kept.values())) if kept else np.empty((n, 0))
    row = Row(
        model,
        prompt,
        effect,
        math.nan,
        n_items,
        f"least squares across {n} target languages (the units): gain ~ 1 + "
        f"proximity{''.join(f' + {name}' for name in kept)}; "
        f"interval: {settings.confidence:.0%} expanded percentile bootstrap of whole target languages "
        f"({settings.bootstrap_samples} resamples); "
        "p: permutation of the covariate-adjusted proximities across the targets, slope studentized (HC0); "
        f"equivalence_p: the bootstrap TOST, slope margin ±{margin:g}, equivalent at {alpha:g} when its "
        f"{1 - 2 * alpha:.0%} interval "
        "(equivalence_ci_*) lies inside",
    )
    row.notes.append(f"{n} target languages: {', '.join(targets)}")
    if n < z.shape[1] + 3:
        row.notes.append(
            f"{NO_SLOPE}{n} target languages, fewer than the {z.shape[1] + 3} a fit with {z.shape[1]} "
            "covariates and a residual needs"
        )
        return row
    if np.max(np.abs(_residuals(y, _with_intercept(z)))) <= 1e-12:
        # The gains are the same in every target, or exactly what the covariates say (a
        # fine-tuned cell that never answers gains minus its baseline everywhere): the slope
        # is 0 by construction, and its interval, p and TOST would describe that, not the
        # absence of an effect.
        covariates_named = f"the intercept{''.join(f' and {name}' for name in kept)}"
        row.notes.append(
            f"{NO_SLOPE}{covariates_named} explain the gains exactly, so nothing is left that proximity could explain"
        )
        return row
    slope, error = partial_fit(y, x, z)
    row.estimate = float(slope)
    if not np.isfinite(slope):
        row.notes.append(f"{NO_SLOPE}proximity does not vary across the targets once the covariates are accounted for")
        return row
    if with_interval:
        _bootstrap_targets(row, y, x, z, settings)
    orders, exact = unit_permutations(n, settings.seed)
    adjusted = _residuals(x, _with_intercept(z))
    null_slopes, null_errors = partial_fit(y, adjusted[orders], z)
    with np.errstate(invalid="ignore", divide="ignore"):
        row.p_value = permutation_p(float(slope / error), null_slopes / null_errors, exact)
    if not np.isfinite(row.p_value):
        row.notes.append("no p-value: the fit leaves no residual to studentize the slope by")
    if n < 30:
        row.notes.append(f"wide by design: {n} target languages are {n} units (config/belebele-all.yaml has 120)")
    return row


def _bootstrap_targets(row: Row, y: np.ndarray, x: np.ndarray, z: np.ndarray, settings: StatsSettings) -> None:
    """The slope's interval and TOST from a bootstrap of whole target languages, into
    `row`; a note instead where the targets are too few for an interval."""
    n, alpha, margin = y.size, settings.alpha, settings.proximity_margin
    if n < minimum_clusters(settings.confidence):
        row.notes.append(
            f"{NO_INTERVAL}{n} target languages, fewer than the {minimum_clusters(settings.confidence)} a "
            f"{settings.confidence:.0%} interval needs"
        )
        return
    languages = np.random.default_rng(settings.seed).integers(0, n, size=(settings.bootstrap_samples, n))
    draws = partial_slope(y[languages], x[languages], z[languages])
    row.ci_low, row.ci_high = percentile_interval(draws, expanded_confidence(settings.confidence, n))
    row.equivalence_ci_low, row.equivalence_ci_high = percentile_interval(draws, 1 - 2 * alpha)
    finite = draws[np.isfinite(draws)]
    row.equivalence_p = float(max(np.mean(finite <= -margin), np.mean(finite >= margin)))
    if finite.size < draws.size:
        row.notes.append(
            f"{1 - finite.size / draws.size:.1%} of the resamples drew targets whose proximity does not "
            "vary: left out of the interval"
        )


def slope_rows(context: ModelContext, languages: dict[str, Language]) -> tuple[list[Row], list[dict]]:
    """One source's `proximity_slope` under the direct and CoT prompts, and a notes row
    for each that has too few targets (or targets without metadata) to be fitted."""
    source, known = measured(languages)
    rows, absent = [], []
    for comparison in (FT_DIRECT, FT_COT):
        codes = context.cells.langs(comparison, languages)
        targets = [code for code in codes if code in known]
        left_out = [code for code in codes if languages[code].is_target and code not in known]
        if source is None or not slope_fits(source, targets):
            why = (
                f"missing: {len(targets)} target languages with Glottolog metadata and both cells, fewer "
                f"than the {MIN_TARGETS} a slope needs"
                if len(targets) < MIN_TARGETS
                else "missing: every target is at the same genealogical proximity to the source, so no slope "
                "can be estimated"
            )
            absent.append(notes_row("effects", SLOPE, why, model=context.model, prompt=comparison.prompt))
            continue
        accuracy = context.cells.values.mean(axis=0)
        baseline = np.array([accuracy[context.cells.columns[(*comparison.before, code)]] for code in targets])
        gain = np.array([accuracy[context.cells.columns[(*comparison.after, code)]] for code in targets]) - baseline
        metadata = language_metadata()
        proximity = np.array([genealogical_proximity(source, metadata[code]) for code in targets])
        script = np.array([float(languages[code].script == source.script) for code in targets])
        row = slope_row(
            (context.model, comparison.prompt, SLOPE, context.n_items),
            gain,
            proximity,
            {"baseline": baseline, "same_script": script},
            targets,
            context.settings,
            with_interval=not context.resampling.too_few,
        )
        if left_out:
            row.notes.append(f"left out: {', '.join(left_out)}, which have no Glottolog metadata (docs/languages.md)")
        rows.append(row)
    return rows, absent


def _cell_accuracy(accuracy: np.ndarray, cells: ModelCells, variant: str, prompt: str, codes: list[str]) -> np.ndarray:
    return np.array([accuracy[cells.columns[(variant, prompt, code)]] for code in codes])


def interaction_slope_rows(items: pd.DataFrame, study: dict, settings: StatsSettings) -> list[Row]:
    """With several sources, per model and prompt: `proximity_interaction`, the first
    source's gain minus each other's on the targets that are neither, on the difference
    of their proximities; Holm across the models per prompt and effect."""
    sources = source_languages(study)
    known = language_metadata()
    if len(sources) < 2 or any(source not in known for source in sources):
        return []
    variants = finetuned_variants(sources)
    targets = [code for code in study["languages"] if code not in sources and code in known]
    first = sources[0]
    cells_by_model, passages = correctness(items)
    # The resampling is drawn for its note only, so only where the passages are too few
    # (Resampling.too_few): for 900 passages it would cost 0.5 s and 50 MB for nothing.
    few = passages.n < minimum_clusters(settings.confidence)
    too_few = too_few_note(settings.resampling(passages.index)) if few else ""
    rows = []
    for model, cells in cells_by_model.items():
        accuracy = cells.values.mean(axis=0)
        for prompt in (FT_DIRECT.prompt, FT_COT.prompt):
            for other in sources[1:]:
                codes = [
                    code
                    for code in targets
                    if all(
                        (variant, prompt, code) in cells.columns
                        for variant in ("base", variants[first], variants[other])
                    )
                ]
                if len(codes) < MIN_TARGETS:
                    continue

                scripts = {code: study["languages"][code]["script"] for code in [first, other, *codes]}
                row = slope_row(
                    (
                        model,
                        prompt,
                        INTERACTION if len(sources) == 2 else f"{INTERACTION}_{other}",
                        cells.values.shape[0],
                    ),
                    _cell_accuracy(accuracy, cells, variants[first], prompt, codes)
                    - _cell_accuracy(accuracy, cells, variants[other], prompt, codes),
                    np.array(
                        [
                            genealogical_proximity(known[first], known[code])
                            - genealogical_proximity(known[other], known[code])
                            for code in codes
                        ]
                    ),
                    {
                        "baseline": _cell_accuracy(accuracy, cells, "base", prompt, codes),
                        "same_script_difference": np.array(
                            [
                                float(scripts[code] == scripts[first]) - float(scripts[code] == scripts[other])
                                for code in codes
                            ]
                        ),
                    },
                    codes,
                    settings,
                    with_interval=not too_few,
                )
                row.notes.append(
                    f"the gain after {first} minus the gain after {other}, on the proximity to {first} "
                    f"minus that to {other}"
                )
                row.notes += [too_few] if too_few else []
                rows.append(row)
    for key in sorted({(row.prompt, row.effect) for row in rows}):
        family = [row for row in rows if (row.prompt, row.effect) == key and np.isfinite(row.p_value)]
        for row, adjusted in zip(family, holm([row.p_value for row in family])):
            row.p_adjusted = adjusted
            row.holm_family = f"secondary: Holm across the models' {'/'.join(key)} tests"
    return rows
