"""The gains by language group and what qualifies the relatedness difference in
differences: its headroom-normalised form, the language-label permutation, the logistic
models (per model and pooled over models), the minimum detectable effect, script
separated from family, and the per-language McNemar tests."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from ..languages import GROUPS, Language
from ..paths import POOLED_MODEL as POOLED
from ..proximity import slopes_tested
from ..stattests import Resampling, gee_interactions, minimum_detectable_effect, relabelling_p
from .cells import COMPARISONS, Comparison, ModelCells
from .effects import ModelContext, Row, accuracy_effect, normalised_effect
from .notes import too_few_note, unit_name
from .settings import StatsSettings


def _gee_frame(
    cells: ModelCells,
    comparison: Comparison,
    targets: list[str],
    languages: dict[str, Language],
    source_script: str,
    clusters: np.ndarray,
) -> pd.DataFrame:
    blocks = []
    for code in targets:
        for treated, cell in ((0, comparison.before), (1, comparison.after)):
            blocks.append(
                pd.DataFrame(
                    {
                        "correct": cells.values[:, cells.columns[(*cell, code)]],
                        "treated": treated,
                        "related": int(languages[code].group == "related"),
                        "same_script": int(languages[code].script == source_script),
                        "lang": code,
                        "passage": clusters,
                    }
                )
            )
    return pd.concat(blocks, ignore_index=True)


def _unfittable(frame: pd.DataFrame, comparison: Comparison, n_items: int) -> str:
    """Why the logistic model has no finite estimate on these data ("" if it has)."""
    if (
        frame.loc[frame.treated == 1, "correct"].to_numpy() == frame.loc[frame.treated == 0, "correct"].to_numpy()
    ).all():
        return (
            f"no item changes between {'/'.join(comparison.before)} and {'/'.join(comparison.after)} in any "
            "target language: nothing to model"
        )
    for (code, treated), correct in frame.groupby(["lang", "treated"])["correct"]:
        if correct.sum() in (0, n_items):
            cell = comparison.after if treated else comparison.before
            return (
                f"cell {'/'.join(cell)}/{code} has every item {'correct' if correct.sum() else 'wrong'}: its "
                "log odds are infinite, so the model has no finite estimate"
            )
    return ""


def logit_effects(
    context: ModelContext,
    comparison: Comparison,
    targets: list[str],
    languages: dict[str, Language],
    source_script: str,
    with_script: bool,
) -> list[Row]:
    """correct ~ C(lang) + treated + treated:related (+ treated:same_script), binomial
    GEE clustered by passage: the relatedness interaction as a log odds ratio, beside the
    accuracy-scale difference in differences."""
    terms = ["treated:related"] + (["treated:same_script"] if with_script else [])
    names = {
        "treated:related": f"{comparison.prefix}relatedness_gee",
        "treated:same_script": f"{comparison.prefix}same_script_gee",
    }
    method = (
        "binomial GEE, correct ~ C(lang) + treated + "
        + " + ".join(terms)
        + ", independence working correlation, robust SE clustered by "
        f"{'item' if context.resampling.singletons else 'passage'}; estimate: log odds ratio"
    )
    frame = _gee_frame(context.cells, comparison, targets, languages, source_script, context.clusters)
    note = too_few_note(context.resampling) or _unfittable(frame, comparison, context.n_items)
    fit = (
        None
        if note
        else gee_interactions(
            frame, "correct ~ C(lang) + treated + " + " + ".join(terms), terms, "passage", context.settings.confidence
        )
    )
    note = note or (fit.note if fit else "")
    rows = []
    for term in terms:
        estimate, low, high, p = fit.estimates[term] if fit else (math.nan,) * 4
        row = Row(context.model, comparison.prompt, names[term], estimate, context.n_items, method, low, high, p)
        if note:
            row.notes.append(note)
        rows.append(row)
    return rows


def pooled_effects(
    cells: dict[str, ModelCells],
    comparison: Comparison,
    languages: dict[str, Language],
    settings: StatsSettings,
    resampling: Resampling,
) -> list[Row]:
    """Relatedness from every model together, as a log odds ratio: binomial GEE
    correct ~ C(cell) + C(model):treated + treated:baseline + treated:related on the
    target languages, a cell being one model x language. Its intercepts take each
    cell's level, `treated:baseline` lets the gain depend on the cell's baseline
    accuracy (centred logit of the `before` cell: a near-chance language has more
    headroom), so `treated:related` is the related-language advantage at equal
    baselines. Robust standard errors clustered by passage, across all models."""
    models = [model for model, model_cells in cells.items() if len(model_cells.langs(comparison, languages)) > 1]
    groups = {model: cells[model].groups(comparison, languages) for model in models}
    models = [model for model in models if groups[model]["related"] and groups[model]["control"]]
    if len(models) < 2:
        return []
    blocks = []
    for model in models:
        model_cells = cells[model]
        codes = groups[model]["related"] + groups[model]["control"]
        # Half a passage's worth of shrinkage keeps a cell at 0% or 100% finite.
        baseline = {
            code: special.logit(
                (
                    model_cells.values[:, model_cells.columns[(*comparison.before, code)]].mean()
                    * resampling.n_clusters
                    + 0.5
                )
                / (resampling.n_clusters + 1)
            )
            for code in codes
        }
        frame = _gee_frame(model_cells, comparison, codes, languages, "", resampling.clusters)
        blocks.append(frame.assign(baseline=frame["lang"].map(baseline), model=model, cell=model + "|" + frame["lang"]))
    frame = pd.concat(blocks, ignore_index=True)
    frame["baseline"] -= frame["baseline"].mean()
    terms = ["treated:related", "treated:baseline"]
    names = {
        "treated:related": f"{comparison.prefix}relatedness_gee",
        "treated:baseline": f"{comparison.prefix}baseline_gee",
    }
    formula = "correct ~ C(cell) + C(model):treated + treated:baseline + treated:related"
    method = (
        f"binomial GEE over {len(models)} models, {formula}, baseline = centred logit of each model x "
        f"language's {'/'.join(comparison.before)} accuracy; "
        f"independence working correlation, robust SE clustered by {unit_name(resampling)} across models; "
        "estimate: log odds ratio"
    )
    outcomes = frame.groupby(["cell", "treated"])["correct"].agg(["min", "max"])
    degenerate = outcomes[outcomes["min"] == outcomes["max"]]
    note = too_few_note(resampling) or (
        f"cell {degenerate.index[0][0]} ({'after' if degenerate.index[0][1] else 'before'}) has every "
        "item alike: its log odds are infinite"
        if len(degenerate)
        else ""
    )
    fit = None if note else gee_interactions(frame, formula, terms, "passage", settings.confidence)
    note = note or (fit.note if fit else "")
    rows = []
    for term in terms:
        estimate, low, high, p = fit.estimates[term] if fit else (math.nan,) * 4
        row = Row(POOLED, comparison.prompt, names[term], estimate, resampling.clusters.size, method, low, high, p)
        row.notes.append(
            note
            or f"models: {', '.join(models)}; "
            f"{'conditional on these models' if term.endswith('related') else 'per logit of baseline accuracy'}"
        )
        rows.append(row)
    return rows


@dataclass(frozen=True)
class ScriptSplit:
    """The targets by script against the source's: controls in it (`same_script`) and in
    others (`other_script`), related targets in others (`related_other`)."""

    source_script: str
    same_script: list[str]
    other_script: list[str]
    related_other: list[str]

    @classmethod
    def of(cls, groups: dict[str, list[str]], languages: dict[str, Language]) -> ScriptSplit:
        script = next(lang.script for lang in languages.values() if lang.group == "source")
        return cls(
            script,
            [code for code in groups["control"] if languages[code].script == script],
            [code for code in groups["control"] if languages[code].script != script],
            [code for code in groups["related"] if languages[code].script != script],
        )

    @property
    def same_family(self) -> bool:
        """Related and control targets outside the source's script: family apart from script."""
        return bool(self.related_other and self.other_script)

    @property
    def both_scripts(self) -> bool:
        """Controls in and outside the source's script: script apart from family."""
        return bool(self.same_script and self.other_script)


def _permutation_row(
    context: ModelContext, comparison: Comparison, related: list[str], control: list[str], estimate: float
) -> Row:
    """The difference in differences tested by permuting the related/control labels over
    the target languages (the languages are the units)."""
    cells, targets = context.cells, related + control
    per_language = np.array(
        [float(cells.values.mean(axis=0) @ cells.gain_weights(comparison, [code])) for code in targets]
    )
    p, relabellings, exact = relabelling_p(per_language, len(related), context.settings.seed)
    row = Row(
        context.model,
        comparison.prompt,
        f"{comparison.prefix}relatedness_permutation",
        estimate,
        context.n_items,
        f"p: permutation of the related/control labels over the {len(targets)} target languages "
        + (f"(exact, all {relabellings} relabellings)" if exact else f"({relabellings} random relabellings)"),
        p_value=p,
    )
    if exact:
        # Two-sided: when the groups are the same size a split and its complement give
        # the same |difference|, so the most extreme split comes twice.
        smallest = (2 if 2 * len(related) == len(targets) else 1) / relabellings
        row.notes.append(f"smallest attainable p = {smallest:.3f} (two-sided); languages, not items, are the units")
    return row


def _mde_row(context: ModelContext, comparison: Comparison, weights: np.ndarray) -> Row:
    """The smallest difference in differences this spread of items detects with 80% power."""
    settings = context.settings
    mde = minimum_detectable_effect(context.cells.values @ weights, settings.confidence, clusters=context.clusters)
    row = Row(
        context.model,
        comparison.prompt,
        f"{comparison.prefix}relatedness_mde",
        mde,
        context.n_items,
        "smallest difference in differences detected with 80% power by a two-sided test at "
        f"{1 - settings.confidence:g}, "
        f"for the spread between {unit_name(context.resampling)} observed",
    )
    if not np.isfinite(mde):
        row.notes.append("every item has the same difference in differences: no spread to base a power calculation on")
    return row


def _script_rows(context: ModelContext, comparison: Comparison, split: ScriptSplit) -> list[Row]:
    """Family apart from script (related minus controls, all outside the source's script)
    and script apart from family (controls in the source's script minus the others')."""
    contrasts = []
    if split.same_family:
        note = (
            f"related {'+'.join(split.related_other)} minus controls {'+'.join(split.other_script)}: "
            f"all in scripts other than the source's ({split.source_script})"
        )
        contrasts.append(("same_family", split.related_other, note))
    if split.both_scripts:
        note = (
            f"controls in the source's script ({'+'.join(split.same_script)}) minus controls in other "
            f"scripts ({'+'.join(split.other_script)}): all unrelated"
        )
        contrasts.append(("same_script", split.same_script, note))
    rows = []
    for name, minuend, note in contrasts:
        weights = context.cells.contrast_weights(comparison, minuend, split.other_script)
        rows.append(accuracy_effect(context, comparison.prompt, f"{comparison.prefix}{name}", weights))
        rows[-1].notes.append(note)
    return rows


def relatedness_effects(
    context: ModelContext, comparison: Comparison, groups: dict[str, list[str]], languages: dict[str, Language]
) -> list[Row]:
    """The difference in differences and everything that qualifies it: its headroom-
    normalised form, the language-label permutation test, the logistic model, the
    minimum detectable effect, and script separated from family."""
    cells, prompt = context.cells, comparison.prompt
    related, control = groups["related"], groups["control"]
    weights = cells.contrast_weights(comparison, related, control)
    name = f"{comparison.prefix}relatedness"
    rows = [
        accuracy_effect(context, prompt, name, weights),
        normalised_effect(
            context,
            prompt,
            f"{name}_norm",
            lambda acc: (
                cells.normalised_gain(acc, comparison, related) - cells.normalised_gain(acc, comparison, control)
            ),
            name,
        ),
    ]
    rows.append(_permutation_row(context, comparison, related, control, rows[0].estimate))
    split = ScriptSplit.of(groups, languages)
    rows += logit_effects(
        context, comparison, related + control, languages, split.source_script, with_script=split.both_scripts
    )
    rows.append(_mde_row(context, comparison, weights))
    return rows + _script_rows(context, comparison, split)


def comparison_effects(context: ModelContext, comparison: Comparison, languages: dict[str, Language]) -> list[Row]:
    groups = context.cells.groups(comparison, languages)
    rows = []
    for group, members in groups.items():
        if not members:
            continue
        name = f"{comparison.gain}_{group}"
        rows.append(accuracy_effect(context, comparison.prompt, name, context.cells.gain_weights(comparison, members)))
        rows.append(
            normalised_effect(
                context,
                comparison.prompt,
                f"{comparison.gain}_norm_{group}",
                lambda acc, members=members: context.cells.normalised_gain(acc, comparison, members),
                name,
            )
        )
    if groups["related"] and groups["control"]:
        rows += relatedness_effects(context, comparison, groups, languages)
    for code in context.cells.langs(comparison, languages):
        rows.append(
            accuracy_effect(
                context,
                comparison.prompt,
                f"{comparison.prefix}mcnemar_{code}",
                context.cells.gain_weights(comparison, [code]),
                test="mcnemar",
            )
        )
    return rows


def effects_tested(languages: dict[str, Language]) -> list[tuple[str, str]]:
    """The (prompt, effect) rows with a test (a p-value) that one source's comparison
    gives on a complete tree: what stats.primary may name (xlt.primary). The same
    rows as comparison_effects, named from the config alone."""
    groups = {group: [code for code, lang in languages.items() if lang.group == group] for group in GROUPS}
    split = ScriptSplit.of(groups, languages)
    tested = []
    for comparison in COMPARISONS:
        names = [f"{comparison.gain}_{group}" for group, members in groups.items() if members]
        if groups["related"] and groups["control"]:
            names += [f"{comparison.prefix}relatedness{suffix}" for suffix in ("", "_permutation", "_gee")]
            names += [f"{comparison.prefix}same_script_gee"] * split.both_scripts
            names += [f"{comparison.prefix}same_family"] * split.same_family + [
                f"{comparison.prefix}same_script"
            ] * split.both_scripts
        names += [f"{comparison.prefix}mcnemar_{code}" for code in languages]
        tested += [(comparison.prompt, name) for name in names]
    return tested + slopes_tested(languages)
