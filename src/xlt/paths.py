"""Artifact paths of the study. This is the public contract: other tools write
predictions in this layout and `xlt compare` reads them, so the names never change."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VARIANTS = ("base", "ft")
PROMPTS = ("direct", "cot")

DATA = "results/data/{lang}.parquet"
BASE_MODEL = "results/models/{model}/base"
ADAPTER = "results/models/{model}/adapter"
MERGED = "results/models/{model}/merged"
CHECKPOINTS = "results/checkpoints/{model}"
PREDICTIONS_ROOT = "results/predictions"
PREDICTIONS = PREDICTIONS_ROOT + "/{model}/{variant}/{prompt}/{lang}.parquet"
ACCURACY = "results/scores/accuracy.csv"
EFFECTS = "results/stats/effects.csv"
ALIGNMENT = "results/stats/alignment.csv"
GAINS = "results/stats/gains.csv"
NOTES = "results/stats/notes.csv"
REPORT = "results/report"

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
)
ALIGNMENT_COLUMNS = ("statistic", "estimate", "ci_low", "ci_high", "p_value", "n_models")


@dataclass(frozen=True)
class PredictionFile:
    model: str
    variant: str
    prompt: str
    lang: str
    path: Path


def discover_predictions(root: str | Path) -> list[PredictionFile]:
    """Every `{model}/{variant}/{prompt}/{lang}.parquet` under `root`, sorted.

    Files that sit elsewhere in the tree (partial shards, notes) are not predictions and
    are skipped; a file in the layout with an unknown variant or prompt is an error.
    """
    from .errors import XltError

    root = Path(root)
    if not root.is_dir():
        raise XltError(f"{root}: predictions folder not found")
    found = []
    for path in sorted(root.glob("*/*/*/*.parquet")):
        model, variant, prompt = path.relative_to(root).parts[:3]
        if variant not in VARIANTS:
            raise XltError(f"{path}: variant folder {variant!r} is not one of {', '.join(VARIANTS)}")
        if prompt not in PROMPTS:
            raise XltError(f"{path}: prompt folder {prompt!r} is not one of {', '.join(PROMPTS)}")
        found.append(PredictionFile(model, variant, prompt, path.stem, path))
    if not found:
        raise XltError(f"{root}: no predictions in the layout {{model}}/{{variant}}/{{prompt}}/{{lang}}.parquet")
    return found
