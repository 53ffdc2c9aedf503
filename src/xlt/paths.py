"""The artifact contract of the study: every path the workflow writes and every column
list of its tables, defined here once and used by the rules (workflow/rules) and the
code alike. It is public: other tools write predictions in this layout and `xlt compare`
reads them, so the names never change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

VARIANTS = ("base",)
# Each fine-tuned variant names its source, ft-arb_Arab, with one source as with several.
SOURCE_VARIANT = "ft-{source}"
# The old single-source layout's name of the one fine-tuned variant. Trees written so
# (by older versions, or by tools following the old contract) still compare: with one
# source `ft` is read as ft-<source>, and notes.csv says so (xlt.layout).
OLD_SOURCE_VARIANT = "ft"
# The format-only control of a source (finetune.format_control): an adapter trained on
# the source's examples with every answer replaced by a seeded random letter.
CONTROL_VARIANT = "ctl-{source}"
# The prompts a model writes an answer to; simulated studies (simulate.py) draw these.
GENERATED_PROMPTS = ("direct", "cot")
# The format-free score: the likeliest option label at the direct prompt's answer
# position, a cell of the layout like the generated prompts.
CHOICE_PROMPT = "choice"
# Knowledge without the letters: each option's text scored as the continuation of the
# passage, the question and the answer phrase, no options shown (docs/inference.md). The
# comparison reads these cells where a tree has them (docs/statistics.md), and names what
# is missing where it has not.
CLOZE_PROMPT = "cloze"
PROMPTS = (*GENERATED_PROMPTS, CHOICE_PROMPT, CLOZE_PROMPT)
# The cells each prompt fills: the choice cell comes from the direct prompt's pass.
JOB_CELLS = {"direct": ("direct", CHOICE_PROMPT), "cot": ("cot",), CLOZE_PROMPT: (CLOZE_PROMPT,)}

DATA = "results/data/{lang}.parquet"
BASE_MODEL = "results/models/{model}/base"
# One model x source's LoRA adapter, its merged checkpoint (finetune.merge) and its
# training checkpoints.
ADAPTER = "results/models/{model}/adapter-{source}"
MERGED = "results/models/{model}/merged-{source}"
CHECKPOINTS = "results/checkpoints/{model}-{source}"
TRAINING = "results/data/train/{source}.parquet"
# A source's training examples with the control's letters as their answers.
CONTROL_TRAINING = "results/data/train/control-{source}.parquet"
CONTROL_ADAPTER = "results/models/{model}/adapter-ctl-{source}"
CONTROL_CHECKPOINTS = "results/checkpoints/{model}-ctl-{source}"
# What prepare_training's checks found (rows read, duplicates dropped, test items let through).
TRAINING_CHECKS = "results/data/train/checks.json"
PROVENANCE = "results/provenance.json"
# Under staging.dir (shared storage, outside results/): Hub models and data sets as
# downloaded, and FP8 checkpoints converted to bfloat16 (xlt.staging, xlt.fp8).
STAGED_MODEL = "{staging}/models/{model}"
CONVERTED_MODEL = "{staging}/converted/{model}"
STAGED_DATASET = "{staging}/datasets/{dataset}"
PREDICTIONS_ROOT = "results/predictions"
# A cell's file under a predictions folder: the layout `xlt compare --predictions` reads.
PREDICTION_CELL = "{model}/{variant}/{prompt}/{lang}.parquet"
PREDICTIONS = PREDICTIONS_ROOT + "/" + PREDICTION_CELL
SCORES = "results/scores"
ACCURACY = SCORES + "/accuracy.csv"
# Every prediction re-extracted and rescored, one row per item x cell: compare's input.
ITEMS = SCORES + "/items.parquet"

# The tables of the compare stage, by name; `xlt compare --out DIR` writes them in DIR.
STATS = "results/stats"
STATS_FILES = {"effects": "effects.csv", "alignment": "alignment.csv", "gains": "gains.csv", "notes": "notes.csv"}
EFFECTS = f"{STATS}/{STATS_FILES['effects']}"
ALIGNMENT = f"{STATS}/{STATS_FILES['alignment']}"
GAINS = f"{STATS}/{STATS_FILES['gains']}"
NOTES = f"{STATS}/{STATS_FILES['notes']}"
# How close each target is to each source (xlt.proximity), from the config alone.
PROXIMITY = f"{STATS}/proximity.csv"

# The report's files, by name: the plots, one HTML page per table (items of
# `snakemake --report`), and summary.md with everything in Markdown.
REPORT = "results/report"
REPORT_SUMMARY = "summary.md"
REPORT_PLOTS = {
    "accuracy": "accuracy.png",
    "parse_rate": "parse_rate.png",
    "diagnostics": "format_diagnostics.png",
    "knowledge": "knowledge_readings.png",
    "gains": "gains_by_group.png",
    "alignment": "ft_vs_cot_gain.png",
    "proximity": "gain_vs_proximity.png",
}
REPORT_TABLES = {
    "verdicts": "verdicts.html",
    "accuracy": "accuracy.html",
    "effects": "effects.html",
    "alignment": "alignment.html",
}

# One log per job, named after its wildcards.
LOGS = {
    "prepare_data": "logs/prepare_data.log",
    "prepare_model": "logs/prepare_model/{model}.log",
    "stage_model": "logs/stage_model/{model}.log",
    "stage_dataset": "logs/stage_dataset/{dataset}.log",
    "convert_fp8": "logs/convert_fp8/{model}.log",
    "prepare_training": "logs/prepare_training.log",
    "prepare_control": "logs/prepare_control/{source}.log",
    "finetune": "logs/finetune/{model}-{source}.log",
    "finetune_control": "logs/finetune/{model}-ctl-{source}.log",
    "merge": "logs/merge/{model}-{source}.log",
    "predict": "logs/predict/{model}/{variant}.log",
    "score": "logs/score.log",
    "compare": "logs/compare.log",
    "report": "logs/report.log",
    "proximity": "logs/proximity.log",
    "provenance": "logs/provenance.log",
}

PREDICTION_COLUMNS = (
    "item_id",
    "lang",
    "model",
    "variant",
    "prompt",
    "raw_output",
    "parsed_choice",
    "answer",
    "correct",
    "n_prompt_tokens",
    "n_output_tokens",
)
# Chain-of-thought rows add why the continuation stopped and the forced answer (the
# stated one where there is one, else the likeliest label after the answer phrase);
# older trees and predictions from elsewhere may lack them.
COT_COLUMNS = ("stop_reason", "forced_choice")
# Choice rows add the letter score under the four cyclic rotations of the options: the
# option with the highest mean label log-probability over them (1-4, null: unknown),
# and a JSON list of the original option (1-4) chosen in each rotation, rotation 0
# (the options as shown in the direct prompt) first. Older trees may lack them.
ROTATION_COLUMNS = ("debiased_choice", "rotation_choices")
STOP_REASONS = ("answer", "eos", "budget")
ACCURACY_COLUMNS = (
    "model",
    "variant",
    "prompt",
    "lang",
    "family",
    "script",
    "n",
    "accuracy",
    "ci_low",
    "ci_high",
    "parse_rate",
    # Format diagnostics (docs/diagnostics.md): what a cell's accuracy is made of.
    "forced_accuracy",
    "accuracy_given_parsed",
    "top_choice_share",
    "truncation_rate",
    "empty_rate",
    # The choice cell under the four rotations of its options (NaN for other cells and
    # for trees without rotations): accuracy of the debiased choice, the share of items
    # whose chosen option is the same in every rotation, and the largest share of one
    # letter among the letters chosen over all rotations.
    "debiased_accuracy",
    "binding_consistency",
    "letter_prior",
)
EFFECTS_COLUMNS = (
    "model",
    "prompt",
    "effect",
    "estimate",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "equivalence_p",
    "n_items",
    "role",
    "equivalence_p_adjusted",
    "equivalence_ci_low",
    "equivalence_ci_high",
)
# The model name of effects.csv rows estimated from every model together.
POOLED_MODEL = "pooled"
ALIGNMENT_COLUMNS = ("statistic", "estimate", "ci_low", "ci_high", "p_value", "n_models")
GAINS_COLUMNS = (
    "model",
    "lang",
    "group",
    "family",
    "script",
    "gain",
    "prompt",
    "before",
    "after",
    "estimate",
    "ci_low",
    "ci_high",
    "normalised",
    "normalised_ci_low",
    "normalised_ci_high",
    "n_items",
)
PROXIMITY_COLUMNS = (
    "source",
    "target",
    "source_glottocode",
    "target_glottocode",
    "genealogical",
    "common_clade",
    "same_script",
    "distance_km",
)
NOTES_COLUMNS = ("table", "model", "prompt", "effect", "method", "holm_family", "note", "role")
# effects.csv, gains.csv and notes.csv carry the fine-tuning source after `model` (notes:
# after `table`), alignment.csv first: each source's rows are a single-source study's;
# cross-source rows (relatedness_interaction) have it empty.
SOURCE_COLUMN = "source"


def predictions_frame(rows: list[dict]):
    """The predictions of one job as the contract's table: PREDICTION_COLUMNS and
    COT_COLUMNS in order, then ROTATION_COLUMNS where the rows have them (the choice
    cell); choices are nullable integers (null: no answer found). Every way of
    predicting builds its frame here."""
    import pandas as pd

    rotations = [column for column in ROTATION_COLUMNS if any(column in row for row in rows)]
    frame = pd.DataFrame(rows, columns=[*PREDICTION_COLUMNS, *COT_COLUMNS, *rotations])
    for column in ("parsed_choice", "forced_choice", "debiased_choice"):
        if column in frame.columns:
            frame[column] = frame[column].astype("Int64")
    return frame


def finetuned_variants(sources: list[str]) -> dict[str, str]:
    """Source language -> the name of its fine-tuned variant."""
    return {source: SOURCE_VARIANT.format(source=source) for source in sources}


def control_variants(sources: list[str]) -> dict[str, str]:
    """Source language -> the name of its format-only control variant."""
    return {source: CONTROL_VARIANT.format(source=source) for source in sources}


def study_variants(sources: list[str], controls: Sequence[str] = ()) -> list[str]:
    """base, each source's fine-tuned variant and each of `controls`' control variant."""
    return ["base", *finetuned_variants(sources).values(), *control_variants(list(controls)).values()]


def variant_source(variant: str) -> str | None:
    """The source language a variant folder names (ft-arb_Arab -> arb_Arab), else None."""
    prefix = SOURCE_VARIANT.split("{")[0]
    return variant[len(prefix) :] if variant.startswith(prefix) and len(variant) > len(prefix) else None


def control_source(variant: str) -> str | None:
    """The source language of a control variant folder (ctl-arb_Arab -> arb_Arab), else None."""
    prefix = CONTROL_VARIANT.split("{")[0]
    return variant[len(prefix) :] if variant.startswith(prefix) and len(variant) > len(prefix) else None


def is_variant(variant: str) -> bool:
    import re

    source = variant_source(variant) or control_source(variant)
    return variant in VARIANTS or (source is not None and re.fullmatch(r"[a-z]{3}_[A-Z][a-z]{3}", source) is not None)


@dataclass(frozen=True)
class PredictionFile:
    model: str
    variant: str
    prompt: str
    lang: str
    path: Path


def discover_predictions(root: str | Path) -> list[PredictionFile]:
    """Every PREDICTION_CELL file under `root`, sorted.

    Files that sit elsewhere in the tree (partial shards, notes) are not predictions and
    are skipped; a file in the layout with an unknown variant or prompt is an error. The
    old single-source layout's `ft` is found too: compare reads it (xlt.layout).
    """
    from .errors import XltError

    root = Path(root)
    if not root.is_dir():
        raise XltError(f"{root}: predictions folder not found")
    found = []
    for path in sorted(root.glob("*/*/*/*.parquet")):
        model, variant, prompt = path.relative_to(root).parts[:3]
        if not is_variant(variant) and variant != OLD_SOURCE_VARIANT:
            raise XltError(
                f"{path}: variant folder {variant!r} is not one of {', '.join(VARIANTS)}, ft-<source "
                "language> or ctl-<source language>, e.g. ft-arb_Arab"
            )
        if prompt not in PROMPTS:
            raise XltError(f"{path}: prompt folder {prompt!r} is not one of {', '.join(PROMPTS)}")
        found.append(PredictionFile(model, variant, prompt, path.stem, path))
    if not found:
        raise XltError(f"{root}: no predictions in the layout {PREDICTION_CELL}")
    return found
