"""The statistical comparison: fine-tuning and chain-of-thought gains by language
group, the relatedness difference in differences (with script and family separated),
per-language McNemar tests, and the across-model alignment of the two gains.

Items are parallel across languages (the same passage and question, translated), so
every model is an items x cells matrix of 0/1 correctness, cells being variant x
prompt x language. Several questions share a passage (Belebele's `link`; an item id is
`link#question_number`), so the passage is the unit of every resampling and test: one
bootstrap (whole passages resampled with all their questions and cells) and one set of
passage sign flips serve every effect and model, which keeps all comparisons paired.
Predictions whose item ids carry no passage key are treated as independent questions. Accuracy-scale effects are weighted sums of cells; the headroom-normalised
gains are functions of the cell accuracies; both are evaluated on the same resamples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special

from .atomic import write_csv
from .diagnostics import is_constant, top_share
from .errors import XltError
from .languages import GROUPS, Language
from .paths import ALIGNMENT_COLUMNS, CHOICE_PROMPT, CLOZE_PROMPT, EFFECTS_COLUMNS, GAINS_COLUMNS, NOTES_COLUMNS
from .paths import POOLED_MODEL as POOLED
from .primary import AUTO_PRIMARY
from .proximity import slopes_tested
from .stattests import (
    Resampling,
    bootstrap_p,
    correlation,
    correlation_power,
    detectable_correlation,
    equivalence_interval,
    equivalence_p,
    fisher_interval,
    gee_interactions,
    holm,
    mcnemar_p,
    minimum_clusters,
    minimum_detectable_effect,
    permutation_p,
    relabelling_p,
    sign_flip_p,
    unit_permutations,
)


@dataclass(frozen=True)
class StatsSettings:
    bootstrap_samples: int = 2000
    confidence: float = 0.95
    equivalence_margin: float = 0.05
    seed: int = 0
    primary: str = "auto"
    proximity_margin: float = 0.1

    @classmethod
    def from_config(cls, block: dict) -> StatsSettings:
        return cls(**{key: block[key] for key in ("bootstrap_samples", "confidence", "equivalence_margin", "seed", "primary", "proximity_margin")})

    @property
    def alpha(self) -> float:
        return 1 - self.confidence

    def resampling(self, clusters: np.ndarray | int) -> Resampling:
        return Resampling.draw(clusters, self.bootstrap_samples, self.confidence, self.seed)


@dataclass(frozen=True)
class Passages:
    """The passage of each item (in item order), numbered in order of first appearance,
    and whether the item ids carried a passage key at all."""

    index: np.ndarray
    keyed: bool

    @classmethod
    def of(cls, item_ids: list[str]) -> Passages:
        """From ids `link#question_number`; ids without '#' (predictions from elsewhere)
        are each their own passage."""
        keyed = all("#" in str(item) for item in item_ids)
        keys = [str(item).rsplit("#", 1)[0] for item in item_ids] if keyed else list(item_ids)
        _, first, index = np.unique(keys, return_index=True, return_inverse=True)
        renumber = np.empty(first.size, dtype=int)
        renumber[np.argsort(first)] = np.arange(first.size)
        return cls(renumber[index.ravel()], keyed)

    @property
    def n(self) -> int:
        return int(self.index.max()) + 1

    def describe(self) -> str:
        if not self.keyed:
            return f"{self.index.size} questions treated as independent (item ids carry no passage key 'link#question')"
        return f"{self.n} passages with {self.index.size} questions"


@dataclass(frozen=True)
class Comparison:
    """An accuracy change, `after` minus `before` (each a variant and prompt), whose
    effects are reported under `prompt` in effects.csv."""

    gain: str
    prefix: str
    prompt: str
    after: tuple[str, str]
    before: tuple[str, str]


FT_DIRECT = Comparison("ft_gain", "", "direct", ("ft", "direct"), ("base", "direct"))
FT_COT = Comparison("ft_gain", "", "cot", ("ft", "cot"), ("base", "cot"))
COT = Comparison("cot_gain", "cot_", "cot", ("base", "cot"), ("base", "direct"))
COMPARISONS = (FT_DIRECT, FT_COT, COT)

# The knowledge/format decomposition (docs/diagnostics.md): each gain splits into the
# change of a format-free score (its `_choice` part) and the rest (its `_format` part).
# For fine-tuning the format-free score is the variant's choice cell. The choice cell
# is a property of the variant, not of the prompt, so against it the CoT gain's
# knowledge part would be 0 by construction; the CoT cell's own format-free score is
# its forced answers (`forced_choice`: the stated answer, else the likeliest label
# after the answer phrase), so the CoT gain's `_choice` part is forced CoT minus
# choice (what reasoning changes in the answer), and its `_format` part is the change
# in how far the strict score falls short of the format-free one.
FORCED_PROMPT = "cot_forced"  # the internal cell of CoT rows scored by forced_choice
# The internal cell of choice rows scored by their debiased letter choice (the option
# with the highest mean log-probability over the four rotations), where rows have one.
DEBIASED_PROMPT = "choice_debiased"
# The format-only control's variant inside one source's comparison (sources.source_items
# names the control variant ctl-<source> so): the source's examples, random letters.
CONTROL_VARIANT = "ctl"
FT_DIRECT_CHOICE = Comparison("ft_gain_choice", "", "direct", ("ft", CHOICE_PROMPT), ("base", CHOICE_PROMPT))
FT_COT_CHOICE = Comparison("ft_gain_choice", "", "cot", ("ft", CHOICE_PROMPT), ("base", CHOICE_PROMPT))
COT_CHOICE = Comparison("cot_gain_choice", "cot_", "cot", ("base", FORCED_PROMPT), ("base", CHOICE_PROMPT))

# The gain of the fine-tuned variant over its format-only control, and the control's own
# gain over the base model (what answering with a letter alone buys), per language group.
FT_DIRECT_OVER_CONTROL = Comparison("ft_gain_over_control", "", "direct", ("ft", "direct"), (CONTROL_VARIANT, "direct"))
FT_COT_OVER_CONTROL = Comparison("ft_gain_over_control", "", "cot", ("ft", "cot"), (CONTROL_VARIANT, "cot"))
CONTROL_DIRECT = Comparison("control_gain", "", "direct", (CONTROL_VARIANT, "direct"), ("base", "direct"))
CONTROL_COT = Comparison("control_gain", "", "cot", (CONTROL_VARIANT, "cot"), ("base", "cot"))
CONTROL_COMPARISONS = (FT_DIRECT_OVER_CONTROL, CONTROL_DIRECT, FT_COT_OVER_CONTROL, CONTROL_COT)


@dataclass(frozen=True)
class Reading:
    """One reading of a gain's knowledge part: the change `knowledge` (after minus before)
    is the knowledge part, the gain minus it the format part. `reading` names it in the
    rows (`<gain>_knowledge_<reading>_<group>`, `<gain>_format_<reading>_<group>`); the
    letter-choice reading keeps its first names (`<gain>_choice_*`, `<gain>_format_*`)."""

    gain: Comparison
    reading: str
    knowledge: Comparison


def _reading(gain: Comparison, reading: str, after: tuple[str, str], before: tuple[str, str]) -> Reading:
    return Reading(gain, reading, Comparison(f"{gain.gain}_knowledge_{reading}", gain.prefix, gain.prompt, after, before))


# The knowledge readings of each gain: `choice` (the letter score at the answer position,
# kept), then cloze (the option texts scored, no letters: the default), the debiased
# letter and the format-only control. For the CoT gain the knowledge score after is the
# forced CoT answer, as in its letter-choice reading.
DECOMPOSITIONS = (
    Reading(FT_DIRECT, "choice", FT_DIRECT_CHOICE),
    _reading(FT_DIRECT, "cloze", ("ft", CLOZE_PROMPT), ("base", CLOZE_PROMPT)),
    _reading(FT_DIRECT, "debiased", ("ft", DEBIASED_PROMPT), ("base", DEBIASED_PROMPT)),
    _reading(FT_DIRECT, "control", ("ft", "direct"), (CONTROL_VARIANT, "direct")),
    Reading(FT_COT, "choice", FT_COT_CHOICE),
    _reading(FT_COT, "cloze", ("ft", CLOZE_PROMPT), ("base", CLOZE_PROMPT)),
    _reading(FT_COT, "debiased", ("ft", DEBIASED_PROMPT), ("base", DEBIASED_PROMPT)),
    _reading(FT_COT, "control", ("ft", "cot"), (CONTROL_VARIANT, "cot")),
    Reading(COT, "choice", COT_CHOICE),
    _reading(COT, "cloze", ("base", FORCED_PROMPT), ("base", CLOZE_PROMPT)),
    _reading(COT, "debiased", ("base", FORCED_PROMPT), ("base", DEBIASED_PROMPT)),
)
# The knowledge scores whose cells can themselves be at chance or one label for most
# items: such a cell cannot show knowledge, so a part read from it is not "knowledge +0".
KNOWLEDGE_PROMPTS = (CHOICE_PROMPT, CLOZE_PROMPT, DEBIASED_PROMPT)
CHANCE = 0.25


def prompts_using(cell: tuple[str, str]) -> set[str]:
    """The prompts of effects.csv whose rows read `cell` (variant, prompt): base/direct
    feeds the CoT gain too, the knowledge cells feed the decomposition under both prompts."""
    comparisons = COMPARISONS + CONTROL_COMPARISONS + tuple(reading.knowledge for reading in DECOMPOSITIONS)
    internal = {FORCED_PROMPT: "cot", DEBIASED_PROMPT: CHOICE_PROMPT}
    cells_of = {c: {(variant, internal.get(prompt, prompt)) for variant, prompt in (c.after, c.before)} for c in comparisons}
    return {comparison.prompt for comparison, cells in cells_of.items() if tuple(cell) in cells}


@dataclass(frozen=True)
class ModelCells:
    """One model's items x cells matrix of 0/1 correctness; `columns` maps
    (variant, prompt, lang) to its column, `top_shares` the knowledge cells among them
    (KNOWLEDGE_PROMPTS) to the share of their most frequent answer among the answers
    given, and the share of items with an answer."""

    values: np.ndarray
    columns: dict[tuple[str, str, str], int]
    top_shares: dict[tuple[str, str, str], tuple[float, float]] = field(default_factory=dict)

    def langs(self, comparison: Comparison, languages: dict[str, Language]) -> list[str]:
        """The config's languages that have both cells of `comparison`, in config order."""
        return [code for code in languages if (*comparison.after, code) in self.columns and (*comparison.before, code) in self.columns]

    def gain_weights(self, comparison: Comparison, codes: list[str]) -> np.ndarray:
        """Weights over cells whose sum is the mean gain over `codes`."""
        weights = np.zeros(self.values.shape[1])
        for code in codes:
            weights[self.columns[(*comparison.after, code)]] += 1 / len(codes)
            weights[self.columns[(*comparison.before, code)]] -= 1 / len(codes)
        return weights

    def contrast_weights(self, comparison: Comparison, first: list[str], second: list[str]) -> np.ndarray:
        """Weights whose sum is the mean gain over `first` minus that over `second`."""
        return self.gain_weights(comparison, first) - self.gain_weights(comparison, second)

    def groups(self, comparison: Comparison, languages: dict[str, Language]) -> dict[str, list[str]]:
        """Group (source, related, control) -> its languages that have both cells."""
        codes = self.langs(comparison, languages)
        return {group: [code for code in codes if languages[code].group == group] for group in GROUPS}

    def normalised_gain(self, accuracy: np.ndarray, comparison: Comparison, codes: list[str]) -> np.ndarray:
        """Mean over `codes` of (after - before) / (1 - before), the share of the
        headroom gained, from cell accuracies (last axis); NaN where before is 1."""
        after = accuracy[..., [self.columns[(*comparison.after, code)] for code in codes]]
        before = accuracy[..., [self.columns[(*comparison.before, code)] for code in codes]]
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(before < 1, (after - before) / np.where(before < 1, 1 - before, 1), np.nan)
        return share.mean(axis=-1)


def with_forced_cells(items: pd.DataFrame) -> pd.DataFrame:
    """`items` plus, for every CoT cell whose rows carry `forced_choice`, a
    FORCED_PROMPT cell scored by it (rows without one count their stated answer)."""
    if "forced_choice" not in items.columns:
        return items
    cot = items[items["prompt"] == "cot"]
    has_forced = cot.groupby(["model", "variant", "lang"])["forced_choice"].transform(lambda column: column.notna().any())
    forced = cot[has_forced.astype(bool)]
    choice = forced["forced_choice"].fillna(forced["parsed_choice"])
    return pd.concat([items, forced.assign(prompt=FORCED_PROMPT, parsed_choice=choice, correct=choice.eq(forced["answer"]).fillna(False))], ignore_index=True)


def with_debiased_cells(items: pd.DataFrame) -> pd.DataFrame:
    """`items` plus, for every choice cell whose rows carry `debiased_choice`, a
    DEBIASED_PROMPT cell scored by it (a row without one has no answer)."""
    if "debiased_choice" not in items.columns:
        return items
    choice = items[items["prompt"] == CHOICE_PROMPT]
    has_debiased = choice.groupby(["model", "variant", "lang"])["debiased_choice"].transform(lambda column: column.notna().any())
    debiased = choice[has_debiased.astype(bool)]
    picked = debiased["debiased_choice"].astype("Int64")
    return pd.concat(
        [items, debiased.assign(prompt=DEBIASED_PROMPT, parsed_choice=picked, correct=picked.eq(debiased["answer"]).fillna(False))], ignore_index=True
    )


def correctness(items: pd.DataFrame) -> tuple[dict[str, ModelCells], Passages]:
    """Model -> ModelCells, on the items every model has in every one of its cells
    (pairing needs the same items everywhere), in item-id order; and their passages."""
    wide = {}
    for model, rows in items.groupby("model", sort=True):
        wide[model] = rows.pivot_table(index="item_id", columns=["variant", "prompt", "lang"], values="correct", aggfunc="first").astype(float)
    common = set.intersection(*(set(matrix.dropna().index) for matrix in wide.values()))
    if not common:
        raise XltError("no item has predictions in every model, variant, prompt and language; the comparison needs paired items")
    ordered = sorted(common)
    knowledge = items[items["prompt"].isin(KNOWLEDGE_PROMPTS) & items["item_id"].isin(common)]
    shares = {
        key: (top_share(rows["parsed_choice"]), float(rows["parsed_choice"].notna().mean()))
        for key, rows in knowledge.groupby(["model", "variant", "prompt", "lang"])
    }
    cells = {
        model: ModelCells(
            matrix.loc[ordered].to_numpy(),
            {column: k for k, column in enumerate(matrix.columns)},
            {key[1:]: share for key, share in shares.items() if key[0] == model},
        )
        for model, matrix in wide.items()
    }
    return cells, Passages.of(ordered)


@dataclass
class Row:
    """One row of effects.csv, with how it was computed and any reason for a gap."""

    model: str
    prompt: str
    effect: str
    estimate: float
    n_items: int
    method: str
    ci_low: float = math.nan
    ci_high: float = math.nan
    p_value: float = math.nan
    p_adjusted: float = math.nan
    equivalence_p: float = math.nan
    role: str = "secondary"
    equivalence_p_adjusted: float = math.nan
    equivalence_ci_low: float = math.nan
    equivalence_ci_high: float = math.nan
    holm_family: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelContext:
    model: str
    cells: ModelCells
    draws: np.ndarray  # bootstrap resamples x cells: cell accuracies
    resampling: Resampling
    settings: StatsSettings

    @classmethod
    def build(cls, model: str, cells: ModelCells, resampling: Resampling, settings: StatsSettings) -> ModelContext:
        return cls(model, cells, resampling.means(cells.values), resampling, settings)

    @property
    def n_items(self) -> int:
        return self.cells.values.shape[0]

    @property
    def clusters(self) -> np.ndarray:
        return self.resampling.clusters


def _unit(resampling: Resampling) -> str:
    return "items" if resampling.singletons else "passages"


def _interval_method(settings: StatsSettings, resampling: Resampling) -> str:
    return f"{settings.confidence:.0%} expanded percentile bootstrap over {_unit(resampling)} ({settings.bootstrap_samples} resamples)"


def too_few_note(resampling: Resampling) -> str:
    """Why every interval of a comparison is NaN where its passages are too few for one
    (stattests.minimum_clusters), else ""."""
    if not resampling.too_few:
        return ""
    confidence = resampling.confidence
    return (
        f"no interval: {resampling.n_clusters} {_unit(resampling)}, fewer than the {minimum_clusters(confidence)} a {confidence:.0%} interval needs "
        f"(no two-sided test at {1 - confidence:g} can reject on fewer)"
    )


def accuracy_effect(context: ModelContext, prompt: str, name: str, weights: np.ndarray, test: str = "sign-flip") -> Row:
    """An accuracy-scale effect (a weighted sum of cells): bootstrap interval, passage
    sign-flip p-value (or, for one language, exact McNemar when every passage has one
    question, a passage sign-flip when some have more) and the TOST p-value."""
    values = context.cells.values @ weights
    settings = context.settings
    low, high = context.resampling.interval(context.draws @ weights)
    if test == "mcnemar" and context.resampling.singletons:
        after, before = np.flatnonzero(weights > 0)[0], np.flatnonzero(weights < 0)[0]
        p = mcnemar_p(context.cells.values[:, before], context.cells.values[:, after])
        test_text = "exact McNemar"
    else:
        p = sign_flip_p(values, context.resampling.signs)
        unit = "item" if context.resampling.singletons else "passage"
        test_text = f"{unit} sign-flip ({context.resampling.signs.shape[0]} flips)" + (
            " (McNemar's test with passages as clusters)" if test == "mcnemar" else ""
        )
    margin = settings.equivalence_margin
    scale = (float(weights[weights < 0].sum()), float(weights[weights > 0].sum()))
    too_few = context.resampling.too_few
    tost_low, tost_high = (math.nan, math.nan) if too_few else equivalence_interval(values, settings.alpha, *scale, context.clusters)
    row = Row(
        context.model,
        prompt,
        name,
        float(values.mean()),
        context.n_items,
        f"{_interval_method(settings, context.resampling)}; p: {test_text}; equivalence_p: empirical-likelihood TOST over {_unit(context.resampling)}, "
        f"margin ±{margin:g}, equivalent at {settings.alpha:g} when its {1 - 2 * settings.alpha:.0%} interval (equivalence_ci_*) lies inside",
        low,
        high,
        p,
        equivalence_p=equivalence_p(values, margin, *scale, context.clusters),
        equivalence_ci_low=tost_low,
        equivalence_ci_high=tost_high,
    )
    if np.all(values == values[0]) and not too_few:
        row.ci_low = row.ci_high = row.estimate  # what the resamples give, less their rounding
        row.notes.append(f"every item has the same value ({values[0]:+.3f}): the interval collapses; the TOST p reflects the number of items only")
    return row


def normalised_effect(context: ModelContext, prompt: str, name: str, statistic, raw_name: str) -> Row:
    """A headroom-normalised gain (or difference of them): bootstrap interval only, as
    its test is the accuracy-scale effect `raw_name`."""
    estimate = float(statistic(context.cells.values.mean(axis=0)))
    draws = statistic(context.draws)
    low, high = context.resampling.interval(draws)
    row = Row(
        context.model,
        prompt,
        name,
        estimate,
        context.n_items,
        f"{_interval_method(context.settings, context.resampling)}; tested on the accuracy scale as {raw_name}",
        low,
        high,
    )
    undefined = float(np.mean(~np.isfinite(draws)))
    if not np.isfinite(estimate):
        row.notes.append("a language is at 100% before the change: no headroom to normalise by")
    elif undefined > 0:
        row.notes.append(f"{undefined:.1%} of resamples have a language at 100% before the change and are left out of the interval")
    return row


def _gee_frame(
    cells: ModelCells, comparison: Comparison, targets: list[str], languages: dict[str, Language], source_script: str, clusters: np.ndarray
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
    if (frame.loc[frame.treated == 1, "correct"].to_numpy() == frame.loc[frame.treated == 0, "correct"].to_numpy()).all():
        return f"no item changes between {'/'.join(comparison.before)} and {'/'.join(comparison.after)} in any target language: nothing to model"
    for (code, treated), correct in frame.groupby(["lang", "treated"])["correct"]:
        if correct.sum() in (0, n_items):
            cell = comparison.after if treated else comparison.before
            return f"cell {'/'.join(cell)}/{code} has every item {'correct' if correct.sum() else 'wrong'}: its log odds are infinite, so the model has no finite estimate"
    return ""


def logit_effects(
    context: ModelContext, comparison: Comparison, targets: list[str], languages: dict[str, Language], source_script: str, with_script: bool
) -> list[Row]:
    """correct ~ C(lang) + treated + treated:related (+ treated:same_script), binomial
    GEE clustered by passage: the relatedness interaction as a log odds ratio, beside the
    accuracy-scale difference in differences."""
    terms = ["treated:related"] + (["treated:same_script"] if with_script else [])
    names = {"treated:related": f"{comparison.prefix}relatedness_gee", "treated:same_script": f"{comparison.prefix}same_script_gee"}
    method = (
        "binomial GEE, correct ~ C(lang) + treated + "
        + " + ".join(terms)
        + f", independence working correlation, robust SE clustered by {'item' if context.resampling.singletons else 'passage'}; estimate: log odds ratio"
    )
    frame = _gee_frame(context.cells, comparison, targets, languages, source_script, context.clusters)
    note = too_few_note(context.resampling) or _unfittable(frame, comparison, context.n_items)
    fit = None if note else gee_interactions(frame, "correct ~ C(lang) + treated + " + " + ".join(terms), terms, "passage", context.settings.confidence)
    note = note or fit.note
    rows = []
    for term in terms:
        estimate, low, high, p = fit.estimates[term] if fit else (math.nan,) * 4
        row = Row(context.model, comparison.prompt, names[term], estimate, context.n_items, method, low, high, p)
        if note:
            row.notes.append(note)
        rows.append(row)
    return rows


def pooled_effects(
    cells: dict[str, ModelCells], comparison: Comparison, languages: dict[str, Language], settings: StatsSettings, resampling: Resampling
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
                (model_cells.values[:, model_cells.columns[(*comparison.before, code)]].mean() * resampling.n_clusters + 0.5) / (resampling.n_clusters + 1)
            )
            for code in codes
        }
        frame = _gee_frame(model_cells, comparison, codes, languages, "", resampling.clusters)
        blocks.append(frame.assign(baseline=frame["lang"].map(baseline), model=model, cell=model + "|" + frame["lang"]))
    frame = pd.concat(blocks, ignore_index=True)
    frame["baseline"] -= frame["baseline"].mean()
    terms = ["treated:related", "treated:baseline"]
    names = {"treated:related": f"{comparison.prefix}relatedness_gee", "treated:baseline": f"{comparison.prefix}baseline_gee"}
    formula = "correct ~ C(cell) + C(model):treated + treated:baseline + treated:related"
    method = (
        f"binomial GEE over {len(models)} models, {formula}, baseline = centred logit of each model x language's {'/'.join(comparison.before)} accuracy; "
        f"independence working correlation, robust SE clustered by {_unit(resampling)} across models; estimate: log odds ratio"
    )
    outcomes = frame.groupby(["cell", "treated"])["correct"].agg(["min", "max"])
    degenerate = outcomes[outcomes["min"] == outcomes["max"]]
    note = too_few_note(resampling) or (
        f"cell {degenerate.index[0][0]} ({'after' if degenerate.index[0][1] else 'before'}) has every item alike: its log odds are infinite"
        if len(degenerate)
        else ""
    )
    fit = None if note else gee_interactions(frame, formula, terms, "passage", settings.confidence)
    note = note or fit.note
    rows = []
    for term in terms:
        estimate, low, high, p = fit.estimates[term] if fit else (math.nan,) * 4
        row = Row(POOLED, comparison.prompt, names[term], estimate, resampling.clusters.size, method, low, high, p)
        row.notes.append(
            note or f"models: {', '.join(models)}; {'conditional on these models' if term.endswith('related') else 'per logit of baseline accuracy'}"
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


def relatedness_effects(context: ModelContext, comparison: Comparison, groups: dict[str, list[str]], languages: dict[str, Language]) -> list[Row]:
    """The difference in differences and everything that qualifies it: its headroom-
    normalised form, the language-label permutation test, the logistic model, the
    minimum detectable effect, and script separated from family."""
    cells, settings, prefix, prompt = context.cells, context.settings, comparison.prefix, comparison.prompt
    related, control = groups["related"], groups["control"]
    weights = cells.contrast_weights(comparison, related, control)
    name = f"{prefix}relatedness"
    rows = [
        accuracy_effect(context, prompt, name, weights),
        normalised_effect(
            context,
            prompt,
            f"{name}_norm",
            lambda acc: cells.normalised_gain(acc, comparison, related) - cells.normalised_gain(acc, comparison, control),
            name,
        ),
    ]

    targets = related + control
    per_language = np.array([float(cells.values.mean(axis=0) @ cells.gain_weights(comparison, [code])) for code in targets])
    p, relabellings, exact = relabelling_p(per_language, len(related), settings.seed)
    permutation = Row(
        context.model,
        prompt,
        f"{name}_permutation",
        rows[0].estimate,
        context.n_items,
        f"p: permutation of the related/control labels over the {len(targets)} target languages "
        + (f"(exact, all {relabellings} relabellings)" if exact else f"({relabellings} random relabellings)"),
        p_value=p,
    )
    if exact:
        # Two-sided: when the groups are the same size a split and its complement give
        # the same |difference|, so the most extreme split comes twice.
        smallest = (2 if 2 * len(related) == len(targets) else 1) / relabellings
        permutation.notes.append(f"smallest attainable p = {smallest:.3f} (two-sided); languages, not items, are the units")
    rows.append(permutation)

    split = ScriptSplit.of(groups, languages)
    source_script, other_script, same_script, related_other = split.source_script, split.other_script, split.same_script, split.related_other
    rows += logit_effects(context, comparison, targets, languages, source_script, with_script=split.both_scripts)

    mde = minimum_detectable_effect(cells.values @ weights, settings.confidence, clusters=context.clusters)
    mde_row = Row(
        context.model,
        prompt,
        f"{name}_mde",
        mde,
        context.n_items,
        f"smallest difference in differences detected with 80% power by a two-sided test at {1 - settings.confidence:g}, for the spread between {_unit(context.resampling)} observed",
    )
    if not np.isfinite(mde):
        mde_row.notes.append("every item has the same difference in differences: no spread to base a power calculation on")
    rows.append(mde_row)

    if split.same_family:
        rows.append(accuracy_effect(context, prompt, f"{prefix}same_family", cells.contrast_weights(comparison, related_other, other_script)))
        rows[-1].notes.append(
            f"related {'+'.join(related_other)} minus controls {'+'.join(other_script)}: all in scripts other than the source's ({source_script})"
        )
    if split.both_scripts:
        rows.append(accuracy_effect(context, prompt, f"{prefix}same_script", cells.contrast_weights(comparison, same_script, other_script)))
        rows[-1].notes.append(
            f"controls in the source's script ({'+'.join(same_script)}) minus controls in other scripts ({'+'.join(other_script)}): all unrelated"
        )
    return rows


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
            accuracy_effect(context, comparison.prompt, f"{comparison.prefix}mcnemar_{code}", context.cells.gain_weights(comparison, [code]), test="mcnemar")
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
            names += [f"{comparison.prefix}same_family"] * split.same_family + [f"{comparison.prefix}same_script"] * split.both_scripts
        names += [f"{comparison.prefix}mcnemar_{code}" for code in languages]
        tested += [(comparison.prompt, name) for name in names]
    return tested + slopes_tested(languages)


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
                found.append(f"{name} at chance ({cells.values[:, column].mean():.2f})")
    return found


def decomposition_effects(context: ModelContext, reading: Reading, languages: dict[str, Language], with_total: bool = True) -> tuple[list[Row], list[dict]]:
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
    cells, settings, prompt = context.cells, context.settings, gain.prompt
    groups = cells.groups(gain, languages)
    groups["targets"] = groups["related"] + groups["control"]
    codes = [code for code in languages if any(code in members for members in groups.values())]
    absent = [f"{'/'.join(cell)}/{code}" for code in codes for cell in (knowledge.after, knowledge.before) if (*cell, code) not in cells.columns]
    letters = reading.reading == "choice"
    names = (f"{gain.gain}_choice", f"{gain.gain}_format") if letters else (knowledge.gain, f"{gain.gain}_format_{reading.reading}")
    if absent:
        why = (
            f"missing: no {reading.reading} reading of the knowledge part: no {', '.join(absent[:4])}{' ...' if len(absent) > 4 else ''} "
            f"(needs {_needs(reading)}; older runs and predictions from elsewhere may lack it)"
        )
        effect = f"{names[0]}_*, {names[1]}_*" + (f", {gain.gain}_format_share_targets" if letters else "")
        return [], [
            {"table": "effects", "model": context.model, "prompt": prompt, "effect": effect, "method": "", "holm_family": "", "note": why, "role": "secondary"}
        ]
    method = (
        f"{_interval_method(settings, context.resampling)}; descriptive, not tested (outside the Holm families); {reading.reading} reading: "
        f"knowledge part: {'/'.join(knowledge.after)} - {'/'.join(knowledge.before)}, format part: the gain minus it"
    )

    def described(name: str, estimate: float, draws: np.ndarray) -> Row:
        low, high = context.resampling.interval(draws)
        return Row(context.model, prompt, name, estimate, context.n_items, method, low, high)

    accuracy = cells.values.mean(axis=0)
    rows = []
    for group, members in groups.items():
        if not members:
            continue
        total, part = cells.gain_weights(gain, members), cells.gain_weights(knowledge, members)
        parts = {f"{names[0]}_{group}": part, f"{names[1]}_{group}": total - part}
        if group == "targets" and with_total:
            parts = {f"{gain.gain}_targets": total, **parts}
        found = [described(name, float(accuracy @ weights), context.draws @ weights) for name, weights in parts.items()]
        unreadable = unreadable_cells(context, knowledge, members)
        if unreadable:
            for row in found[-2:]:
                row.notes.append(
                    f"knowledge score unreadable in {len(unreadable)} cell(s): {', '.join(unreadable)}; there the {reading.reading} score cannot show "
                    "knowledge, so this part is not evidence of knowledge +0"
                )
        rows += found
        if group == "targets" and letters:
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where(context.draws @ total != 0, context.draws @ (total - part) / (context.draws @ total), np.nan)
                estimate = float(accuracy @ (total - part) / (accuracy @ total)) if accuracy @ total != 0 else math.nan
            row = described(f"{gain.gain}_format_share_targets", estimate, share)
            row.method += "; share: format part / gain over the targets"
            if not np.isfinite(estimate):
                row.notes.append("the gain over the targets is 0: no share to take")
            elif (interval := context.resampling.interval(context.draws @ total))[0] <= 0 <= interval[1]:
                row.notes.append("the gain's interval covers 0: the share is unstable (its interval is wide or unbounded in practice)")
            rows.append(row)
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
                    f"missing: no format-only control for {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} (finetune.format_control does not "
                    "name this source, or the tree predates the control): no gain over the control, and no control reading of the knowledge part"
                )
                absent.append(
                    {
                        "table": "effects",
                        "model": context.model,
                        "prompt": comparison.prompt,
                        "effect": "ft_gain_over_control_*, control_gain_*",
                        "method": "",
                        "holm_family": "",
                        "note": why,
                        "role": "secondary",
                    }
                )
            continue
        for group, members in context.cells.groups(comparison, languages).items():
            if members:
                rows.append(accuracy_effect(context, comparison.prompt, f"{comparison.gain}_{group}", context.cells.gain_weights(comparison, members)))
    for prompt in sorted({row.prompt for row in rows}):
        family = [row for row in rows if row.prompt == prompt and np.isfinite(row.p_value)]
        for row, adjusted in zip(family, holm([row.p_value for row in family])):
            row.p_adjusted = adjusted
            row.holm_family = f"secondary: Holm over the {len(family)} format-control p-values of {context.model} / {prompt}"
    return rows, absent


def primary_key(setting: str, languages: dict[str, Language]) -> tuple[str, str]:
    """The (prompt, effect) of `stats.primary` ("auto" or "prompt/effect") among one
    source's rows (the study-wide choice is xlt.primary's)."""
    if setting == "auto":
        return AUTO_PRIMARY[-1]
    prompt, _, effect = setting.partition("/")
    if (prompt, effect) not in effects_tested(languages):
        allowed = ", ".join(f"{p}/{e}" for p, e in effects_tested(languages))
        raise XltError(f"stats.primary: {setting!r} is not a test of this study; allowed: auto, {allowed}")
    return prompt, effect


def _adjust(rows: list[Row], primary: tuple[str, str] | None) -> None:
    """The primary test (one per model) carries the verdict: Holm across models over
    the primary tests only, for its p-value and, separately, its TOST p-value. Every
    other test is secondary: Holm within one model and prompt over its secondary tests,
    a guide to what stands out rather than a claim. `primary` None: every row is
    secondary (the primary test is elsewhere, as the interaction of several sources)."""
    chosen = [row for row in rows if (row.prompt, row.effect) == primary and row.model != POOLED]
    tested = sum(np.isfinite(row.p_value) for row in chosen)
    for row, adjusted, equivalence in zip(chosen, holm([row.p_value for row in chosen]), holm([row.equivalence_p for row in chosen])):
        row.role, row.p_adjusted, row.equivalence_p_adjusted = "primary", adjusted, equivalence
        row.holm_family = f"primary: Holm across the {tested} models' {'/'.join(primary)} tests (p and TOST p adjusted separately)"
    for key in sorted({(row.model, row.prompt) for row in rows}):
        family = [row for row in rows if (row.model, row.prompt) == key and row.role == "secondary" and np.isfinite(row.p_value)]
        for row, adjusted in zip(family, holm([row.p_value for row in family])):
            row.p_adjusted = adjusted
            row.holm_family = f"secondary: Holm over the {len(family)} secondary p-values of {key[0]} / {key[1]}"


def row_tables(rows: list[Row]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows as effects.csv's rows and their notes.csv rows (method, Holm family, notes)."""
    effects = pd.DataFrame([{column: getattr(row, column) for column in EFFECTS_COLUMNS} for row in rows], columns=list(EFFECTS_COLUMNS))
    notes = pd.DataFrame(
        [
            {
                "table": "effects",
                "model": row.model,
                "prompt": row.prompt,
                "effect": row.effect,
                "method": row.method,
                "holm_family": row.holm_family,
                "note": "; ".join(row.notes),
                "role": row.role,
            }
            for row in rows
        ],
        columns=list(NOTES_COLUMNS),
    )
    return effects, notes


def effects_table(
    cells: dict[str, ModelCells],
    languages: dict[str, Language],
    settings: StatsSettings,
    resampling: Resampling,
    with_primary: bool = True,
    extra_rows: tuple = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """effects.csv and its notes (method, Holm family, reasons for gaps); with_primary
    False: every row secondary (compare). `extra_rows`: functions (ModelContext,
    languages) -> (rows, notes rows of what is missing) whose rows join the Holm
    families (xlt.proximity_stats.slope_rows, which imports this module)."""
    rows, controls, absent = [], [], []
    for model, model_cells in cells.items():
        context = ModelContext.build(model, model_cells, resampling, settings)
        for comparison in COMPARISONS:
            rows += comparison_effects(context, comparison, languages)
        totals = set()
        for reading in DECOMPOSITIONS:
            found, missing = decomposition_effects(context, reading, languages, with_total=reading.gain not in totals)
            totals |= {reading.gain} if found else set()
            rows += found
            absent += missing
        found, missing = control_effects(context, languages)
        controls += found
        absent += missing
        for extra in extra_rows:
            found, missing = extra(context, languages)
            rows += found
            absent += missing
    for comparison in COMPARISONS:
        rows += pooled_effects(cells, comparison, languages, settings, resampling)
    _adjust(rows, primary_key(settings.primary, languages) if with_primary else None)
    effects, notes = row_tables(rows + controls)
    if absent:
        notes = pd.concat([notes, pd.DataFrame(absent, columns=list(NOTES_COLUMNS))], ignore_index=True)
    return effects, notes


ALIGNMENT_CELLS = (("base", "direct"), ("ft", "direct"), ("base", "cot"))


@dataclass(frozen=True)
class Unit:
    """A point of the across-model correlations: one model, over all its target
    languages or over one of them."""

    model: str
    cells: ModelCells
    codes: list[str]

    def quantities(self, accuracy: np.ndarray) -> dict[str, np.ndarray]:
        """Baseline and gains from cell accuracies (last axis)."""
        cells, codes = self.cells, self.codes
        return {
            "baseline": accuracy[..., [cells.columns[("base", "direct", code)] for code in codes]].mean(axis=-1),
            "ft_gain": accuracy @ cells.gain_weights(FT_DIRECT, codes),
            "cot_gain": accuracy @ cells.gain_weights(COT, codes),
            "ft_gain_norm": cells.normalised_gain(accuracy, FT_DIRECT, codes),
            "cot_gain_norm": cells.normalised_gain(accuracy, COT, codes),
            "ft_gain_format": accuracy @ (cells.gain_weights(FT_DIRECT, codes) - cells.gain_weights(FT_DIRECT_CHOICE, codes))
            if self.has_choice
            else np.full(accuracy.shape[:-1], np.nan),
        }

    @property
    def has_choice(self) -> bool:
        return all((variant, CHOICE_PROMPT, code) in self.cells.columns for variant in ("base", "ft") for code in self.codes)


ALIGNMENT_PAIRS = (
    ("ft_gain", "cot_gain"),
    ("ft_gain_norm", "cot_gain_norm"),
    ("baseline", "ft_gain"),
    ("baseline", "ft_gain_norm"),
    ("baseline", "cot_gain"),
    ("baseline", "cot_gain_norm"),
    ("ft_gain_format", "cot_gain"),
)
# Pairs that share a measurement (both gains subtract base/direct; a gain subtracts the
# baseline), so item noise alone correlates them (regression to the mean): also
# estimated with x and y measured on disjoint halves of the items, which that shared
# noise cannot reach.
SPLIT_PAIRS = (("ft_gain", "cot_gain"), ("baseline", "ft_gain"), ("baseline", "cot_gain"), ("ft_gain_format", "cot_gain"))
# Disjoint halves remove the shared cell's noise, not a true difference in it: a model
# that is truly bad at letter-only answers (base/direct) has both gains truly larger,
# which no correlation of these two gains can tell from alignment.
CORRELATION_OF_INTEREST = 0.5  # notes.csv states the power of the models unit against it


def alignment_units(cells: dict[str, ModelCells], languages: dict[str, Language]) -> dict[str, list[Unit]]:
    targets = [code for code, lang in languages.items() if lang.is_target]
    units: dict[str, list[Unit]] = {"models": [], "model_language": []}
    for model, model_cells in cells.items():
        codes = [code for code in targets if all((*cell, code) in model_cells.columns for cell in ALIGNMENT_CELLS)]
        if codes:
            units["models"].append(Unit(model, model_cells, codes))
            units["model_language"] += [Unit(model, model_cells, [code]) for code in codes]
    return units


def _stacked(members: list[Unit], accuracy_of) -> dict[str, np.ndarray]:
    """Quantity -> array with the units on the last axis."""
    per_unit = [unit.quantities(accuracy_of(unit)) for unit in members]
    return {name: np.stack([q[name] for q in per_unit], axis=-1) for name in per_unit[0]}


def _half_means(values: np.ndarray, counts: np.ndarray, half: np.ndarray) -> np.ndarray:
    drawn = counts[:, half]
    with np.errstate(invalid="ignore", divide="ignore"):
        return drawn @ values[half] / drawn.sum(axis=1, keepdims=True)


def _pair_correlation(tables, x: str, y: str, method: str, order=slice(None)) -> np.ndarray:
    """corr(x, y) across units; from two half tables, the mean of corr(x on one half,
    y on the other) over both assignments. `order` permutes the units of x."""
    if isinstance(tables, tuple):
        first, second = tables
        return (correlation(first[x][..., order], second[y], method) + correlation(second[x][..., order], first[y], method)) / 2
    return correlation(tables[x][..., order], tables[y], method)


def alignment_table(
    cells: dict[str, ModelCells], languages: dict[str, Language], settings: StatsSettings, resampling: Resampling
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Across models: does the fine-tuning gain go with the CoT gain, and with a weak
    baseline? Per model (the study's unit: interval from Fisher's z over the models, p
    from permuting the pairing of models, exact up to 8 models, and the power at this
    number of models in notes.csv) and per model x target language (more points, not
    independent within a model; interval and p from the passage bootstrap, conditional
    on these models)."""
    units = alignment_units(cells, languages)
    n_models = len(units["models"])
    halves = (resampling.clusters % 2 == 0, resampling.clusters % 2 == 1)
    rows, notes = [], []
    for unit_name, members in units.items():
        enough = len(members) >= 3
        if enough:
            estimates = _stacked(members, lambda unit: unit.cells.values.mean(axis=0))
            draws = _stacked(members, lambda unit: resampling.means(unit.cells.values))
            split_estimates = tuple(_stacked(members, lambda unit, h=h: unit.cells.values[h].mean(axis=0)) for h in halves)
            split_draws = tuple(_stacked(members, lambda unit, h=h: _half_means(unit.cells.values, resampling.counts, h)) for h in halves)
        orders, exact = unit_permutations(len(members), settings.seed) if unit_name == "models" and enough else (None, False)
        p_method = (
            f"permutation of the pairing across models ({'exact, all ' if exact else ''}{len(orders) if orders is not None else 0} orderings)"
            if unit_name == "models"
            else f"{_unit(resampling)[:-1]} bootstrap (conditional on these models and languages: cells of one model are not independent)"
        )
        for pairs, split in ((ALIGNMENT_PAIRS, False), (SPLIT_PAIRS, True)):
            for x, y in pairs:
                for method in ("pearson", "spearman"):
                    statistic = f"{method}:{x}~{y}:{unit_name}" + (":split_items" if split else "")
                    lacking = sorted({unit.model for unit in members if not unit.has_choice}) if "ft_gain_format" in (x, y) else []
                    if lacking:
                        why = f"missing: no choice cell for {', '.join(lacking)}, so no format part of the fine-tuning gain (older runs and predictions from elsewhere may lack it)"
                        notes.append(
                            {
                                "table": "alignment",
                                "model": "",
                                "prompt": "",
                                "effect": statistic,
                                "method": "",
                                "holm_family": "",
                                "note": why,
                                "role": "secondary",
                            }
                        )
                        continue
                    row = {"statistic": statistic, "estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan, "n_models": n_models}
                    note = f"needs at least 3 points, has {len(members)}" if not enough else ""
                    if enough:
                        tables = split_estimates if split else estimates
                        value = float(_pair_correlation(tables, x, y, method))
                        row["estimate"] = value
                        if orders is None:
                            boot = _pair_correlation(split_draws if split else draws, x, y, method)
                            row["ci_low"], row["ci_high"] = resampling.interval(boot)
                        else:
                            row["ci_low"], row["ci_high"] = fisher_interval(value, len(members), settings.confidence, method)
                        if not np.isfinite(value):
                            note = "a quantity does not vary across the points (or a headroom is zero): no correlation"
                        elif orders is not None:
                            row["p_value"] = permutation_p(value, _pair_correlation(tables, x, y, method, orders), exact)
                        else:
                            row["p_value"] = bootstrap_p(boot)
                    if unit_name == "models" and enough:
                        n, alpha = len(members), settings.alpha
                        detectable = detectable_correlation(n, alpha, method=method)
                        power = correlation_power(n, CORRELATION_OF_INTEREST, alpha, method)
                        note = "; ".join(
                            part
                            for part in (
                                note,
                                f"power with {n} models: a two-sided test at {alpha:g} detects a correlation of {detectable:.2f} with 80% power "
                                f"and one of {CORRELATION_OF_INTEREST:g} with {power:.0%} power"
                                if np.isfinite(detectable)
                                else f"{n} models are too few for a Fisher-z interval or a power statement",
                            )
                            if part
                        )
                    rows.append(row)
                    interval_text = (
                        f"{settings.confidence:.0%} Fisher-z interval over the {len(members)} models"
                        if unit_name == "models"
                        else _interval_method(settings, resampling)
                    )
                    method_text = f"{interval_text}; p: {p_method}" + (
                        f"; x and y on disjoint halves of the {_unit(resampling)} (even/odd positions), averaged over both assignments" if split else ""
                    )
                    notes.append(
                        {
                            "table": "alignment",
                            "model": "",
                            "prompt": "",
                            "effect": statistic,
                            "method": method_text,
                            "holm_family": "",
                            "note": note,
                            "role": "secondary",
                        }
                    )
    return pd.DataFrame(rows, columns=list(ALIGNMENT_COLUMNS)), pd.DataFrame(notes, columns=list(NOTES_COLUMNS))


def gains_table(cells: dict[str, ModelCells], languages: dict[str, Language], settings: StatsSettings, resampling: Resampling) -> pd.DataFrame:
    """Per model and language: each comparison's gain and its headroom-normalised form,
    with bootstrap intervals (for the report's per-language plots)."""
    rows = []
    for model, model_cells in cells.items():
        accuracy, draws = model_cells.values.mean(axis=0), resampling.means(model_cells.values)
        for comparison in COMPARISONS:
            for code in model_cells.langs(comparison, languages):
                weights = model_cells.gain_weights(comparison, [code])
                low, high = resampling.interval(draws @ weights)
                norm_low, norm_high = resampling.interval(model_cells.normalised_gain(draws, comparison, [code]))
                lang = languages[code]
                rows.append(
                    {
                        "model": model,
                        "lang": code,
                        "group": lang.group,
                        "family": lang.family,
                        "script": lang.script,
                        "gain": comparison.gain,
                        "prompt": comparison.prompt,
                        "before": float(accuracy[model_cells.columns[(*comparison.before, code)]]),
                        "after": float(accuracy[model_cells.columns[(*comparison.after, code)]]),
                        "estimate": float(accuracy @ weights),
                        "ci_low": low,
                        "ci_high": high,
                        "normalised": float(model_cells.normalised_gain(accuracy, comparison, [code])),
                        "normalised_ci_low": norm_low,
                        "normalised_ci_high": norm_high,
                        "n_items": model_cells.values.shape[0],
                    }
                )
    return pd.DataFrame(rows, columns=list(GAINS_COLUMNS))


@dataclass(frozen=True)
class Comparisons:
    effects: pd.DataFrame
    alignment: pd.DataFrame
    gains: pd.DataFrame
    notes: pd.DataFrame


def compare(items: pd.DataFrame, languages: dict[str, Language], settings: StatsSettings, with_primary: bool = True, extra_rows: tuple = ()) -> Comparisons:
    """effects.csv, alignment.csv, gains.csv and notes.csv from item-level predictions.
    with_primary False: no row is the primary test (one source of several, whose
    primary test is their interaction); every row is secondary. `extra_rows` as
    effects_table takes them."""
    unknown = sorted(set(items["lang"]) - set(languages))
    if unknown:
        raise XltError(f"predictions for language {unknown[0]}, which the config does not list")
    cells, passages = correctness(with_debiased_cells(with_forced_cells(items)))
    resampling = settings.resampling(passages.index)
    effects, effect_notes = effects_table(cells, languages, settings, resampling, with_primary, extra_rows)
    alignment, alignment_notes = alignment_table(cells, languages, settings, resampling)
    notes = pd.concat([effect_notes, alignment_notes], ignore_index=True)
    too_few = too_few_note(resampling)
    if too_few:
        # Every bootstrap interval of the comparison is NaN (the Fisher-z ones over models stand).
        bootstrapped = (notes["table"] != "alignment") | notes["effect"].str.contains(":model_language", regex=False)
        notes.loc[bootstrapped, "note"] = [note if too_few in note else f"{note}; {too_few}" if note else too_few for note in notes.loc[bootstrapped, "note"]]
        gains_notes = [
            {"table": "gains", "model": model, "prompt": "", "effect": "", "method": "", "holm_family": "", "note": too_few, "role": ""} for model in cells
        ]
        notes = pd.concat([notes, pd.DataFrame(gains_notes, columns=list(NOTES_COLUMNS))], ignore_index=True)
    if not passages.keyed:
        notes["note"] = [f"{note}; {passages.describe()}" if note else passages.describe() for note in notes["note"]]
    return Comparisons(effects, alignment, gains_table(cells, languages, settings, resampling), notes)


def write_comparisons(comparisons: Comparisons, effects_out, alignment_out, gains_out, notes_out) -> None:
    write_csv(comparisons.effects, effects_out)
    write_csv(comparisons.alignment, alignment_out)
    write_csv(comparisons.gains, gains_out)
    write_csv(comparisons.notes, notes_out)
