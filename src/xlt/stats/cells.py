"""What is compared: the cells (variant x prompt x language) of each model as an items x
cells matrix of 0/1 correctness, their passages, and the comparisons between cells (the
gains, their knowledge readings and the format-only control's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd

from ..diagnostics import top_share
from ..errors import XltError
from ..languages import GROUPS, Language
from ..paths import CHOICE_PROMPT, CLOZE_PROMPT, GENERATED_PROMPTS


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
    return Reading(
        gain, reading, Comparison(f"{gain.gain}_knowledge_{reading}", gain.prefix, gain.prompt, after, before)
    )


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
# The control reading reads the fine-tuned and control adapters' own direct and CoT
# cells, which after fine-tuning on letters often give one letter for every item.
KNOWLEDGE_PROMPTS = (CHOICE_PROMPT, CLOZE_PROMPT, DEBIASED_PROMPT, *GENERATED_PROMPTS)
CHANCE = 0.25


def prompts_using(cell: tuple[str, str]) -> set[str]:
    """The prompts of effects.csv whose rows read `cell` (variant, prompt): base/direct
    feeds the CoT gain too, the knowledge cells feed the decomposition under both prompts."""
    comparisons = COMPARISONS + CONTROL_COMPARISONS + tuple(reading.knowledge for reading in DECOMPOSITIONS)
    internal = {FORCED_PROMPT: "cot", DEBIASED_PROMPT: CHOICE_PROMPT}
    cells_of = {
        c: {(variant, internal.get(prompt, prompt)) for variant, prompt in (c.after, c.before)} for c in comparisons
    }
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
        return [
            code
            for code in languages
            if (*comparison.after, code) in self.columns and (*comparison.before, code) in self.columns
        ]

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
    has_forced = cot.groupby(["model", "variant", "lang"])["forced_choice"].transform(
        lambda column: column.notna().any()
    )
    forced = cot[has_forced.astype(bool)]
    choice = forced["forced_choice"].fillna(forced["parsed_choice"])
    return pd.concat(
        [
            items,
            forced.assign(
                prompt=FORCED_PROMPT, parsed_choice=choice, correct=choice.eq(forced["answer"]).fillna(False)
            ),
        ],
        ignore_index=True,
    )


def with_debiased_cells(items: pd.DataFrame) -> pd.DataFrame:
    """`items` plus, for every choice cell whose rows carry `debiased_choice`, a
    DEBIASED_PROMPT cell scored by it (a row without one has no answer)."""
    if "debiased_choice" not in items.columns:
        return items
    choice = items[items["prompt"] == CHOICE_PROMPT]
    has_debiased = choice.groupby(["model", "variant", "lang"])["debiased_choice"].transform(
        lambda column: column.notna().any()
    )
    debiased = choice[has_debiased.astype(bool)]
    picked = debiased["debiased_choice"].astype("Int64")
    return pd.concat(
        [
            items,
            debiased.assign(
                prompt=DEBIASED_PROMPT, parsed_choice=picked, correct=picked.eq(debiased["answer"]).fillna(False)
            ),
        ],
        ignore_index=True,
    )


def correctness(items: pd.DataFrame) -> tuple[dict[str, ModelCells], Passages]:
    """Model -> ModelCells, on the items every model has in every one of its cells
    (pairing needs the same items everywhere), in item-id order; and their passages."""
    wide: dict[str, pd.DataFrame] = {}
    for model, rows in items.groupby("model", sort=True):
        wide[str(model)] = rows.pivot_table(
            index="item_id", columns=["variant", "prompt", "lang"], values="correct", aggfunc="first"
        ).astype(float)
    common = set.intersection(*(set(matrix.dropna().index) for matrix in wide.values()))
    if not common:
        raise XltError(
            "no item has predictions in every model, variant, prompt and language; the comparison needs paired items"
        )
    ordered = sorted(common)
    # Items of correctness alone (simulations) have no answers to take shares of.
    answered = "parsed_choice" in items.columns
    knowledge = items[items["prompt"].isin(KNOWLEDGE_PROMPTS if answered else ()) & items["item_id"].isin(common)]
    shares: dict[tuple[str, ...], tuple[float, float]] = {
        cast(tuple[str, ...], key): (top_share(rows["parsed_choice"]), float(rows["parsed_choice"].notna().mean()))
        for key, rows in knowledge.groupby(["model", "variant", "prompt", "lang"])
    }
    cells = {
        model: ModelCells(
            matrix.loc[ordered].to_numpy(),
            {cast(tuple[str, str, str], column): k for k, column in enumerate(matrix.columns)},
            {cast(tuple[str, str, str], key[1:]): share for key, share in shares.items() if key[0] == model},
        )
        for model, matrix in wide.items()
    }
    return cells, Passages.of(ordered)
