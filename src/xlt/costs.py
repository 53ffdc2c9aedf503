"""The run time of each model job from a cost model, against the config's `runtime`:

    python -m xlt.costs                           # the table for config/paper.yaml
    python -m xlt.costs --write docs/slurm.md     # rewrite the table in docs/slurm.md

A job's time is the sum of its phases, each the larger of what its arithmetic and what
its memory traffic take (a roofline), plus loading the weights:

- arithmetic: tokens x active parameters x 6 for training (forward 2, backward 4: LoRA
  skips the frozen weights' gradients, 2, and gradient checkpointing recomputes the
  forward, 2) and x 2 for inference, at the GPUs' dense bf16 rate times an efficiency
  factor (the share of the peak a job reaches: EFFICIENCY);
- memory traffic: a decoding step reads every weight once (a Mixture-of-Experts batch
  of dozens of rows touches nearly every expert), at the GPUs' memory bandwidth; a
  sharded training step (ZeRO-3, FSDP) gathers every weight for the forward pass, the
  backward pass and, with gradient checkpointing, the recomputed forward, once per
  micro-batch, over NVLink within a node and InfiniBand across nodes;
- loading: the checkpoint's bytes from shared storage at LOAD_GB_PER_S per node, read
  by every training process of a node under accelerate (ZeRO-3 and FSDP loading read
  every shard in each process; the page cache may spare some of it).

Token counts are stated estimates, not measurements (TRAIN_TOKENS_PER_EXAMPLE,
PROMPT_TOKENS): Belebele's passages in the nine languages with these models' tokenizers,
and Global-MMLU questions padded within a micro-batch. Inference is costed as vLLM runs it
(tensor parallel: each GPU reads its share of the weights per step); the transformers
backend spreads a model over GPUs one after another and decodes up to GPUs times slower.

The estimate is what a job needs if the model runs as described. The configured run
time is the estimate times RUNTIME_MARGIN, rounded up to whole hours (at least one):
the efficiencies are stated, not measured, and a job that reaches its time limit is
submitted again and resumes. tests/test_costs.py checks config/paper.yaml against it.
Check the first model's real times (its logs print steps, tokens and rows) before the
rest.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

from .atomic import write_text
from .config import load_config
from .errors import XltError
from .paths import study_variants


@dataclass(frozen=True)
class Gpu:
    bf16_tflops: float  # dense, without sparsity (the vendor's data sheet)
    memory_tb_per_s: float
    nvlink_gb_per_s: float  # one direction, per GPU


GPUS = {
    "a100": Gpu(bf16_tflops=312, memory_tb_per_s=2.0, nvlink_gb_per_s=300),
    "h100": Gpu(bf16_tflops=989, memory_tb_per_s=3.35, nvlink_gb_per_s=450),
    "h200": Gpu(bf16_tflops=989, memory_tb_per_s=4.8, nvlink_gb_per_s=450),
}


@dataclass(frozen=True)
class ModelSize:
    total: float  # parameters
    active: float  # parameters used per token (all of a dense model's)
    bytes_per_weight: float  # 2: bfloat16; 1: FP8 (DeepSeek-V3's own checkpoint)


# From each model's card on the Hub.
MODEL_SIZES = {
    "Qwen/Qwen3-4B": ModelSize(4.0e9, 4.0e9, 2),
    "meta-llama/Llama-3.1-8B-Instruct": ModelSize(8.0e9, 8.0e9, 2),
    "Qwen/Qwen3-14B": ModelSize(14.8e9, 14.8e9, 2),
    "Qwen/Qwen3-30B-A3B": ModelSize(30.5e9, 3.3e9, 2),
    "meta-llama/Llama-3.3-70B-Instruct": ModelSize(70.6e9, 70.6e9, 2),
    "Qwen/Qwen3-235B-A22B": ModelSize(235e9, 22e9, 2),
    # Trained from the bfloat16 conversion; inference on the FP8 weights.
    "deepseek-ai/DeepSeek-V3": ModelSize(671e9, 37e9, 1),
}

# The share of the peak a job reaches, stated, not measured here.
EFFICIENCY = {"train": 0.3, "prefill": 0.4, "memory": 0.6, "network": 0.6}
INFINIBAND_GB_PER_S = 50  # per GPU: one 400 Gb/s NDR link each
LOAD_GB_PER_S = 2.0  # shared storage to one node
TRAIN_TOKENS_PER_EXAMPLE = 400  # a Global-MMLU question, its options and answer, padded
PROMPT_TOKENS = 300  # a Belebele passage, question and options, mean over the languages
# Prompts per item: the direct and chain-of-thought prompts share one pass; the cloze
# cell scores each of the four options after the passage and question.
PROMPTS_PER_ITEM = 5
GPU_BATCH = 256  # inference batch_size "auto" on a GPU
RUNTIME_MARGIN = 4


@dataclass(frozen=True)
class Estimate:
    model: str
    stage: str  # finetune (one source) or predict (one variant)
    jobs: int
    gpus: int
    gpu_model: str
    minutes: float  # one job
    configured: int  # the config's runtime, minutes

    @property
    def gpu_hours(self) -> float:
        return self.jobs * self.gpus * self.minutes / 60

    @property
    def runtime(self) -> int:
        """The run time to configure, in minutes."""
        return 60 * max(1, math.ceil(RUNTIME_MARGIN * self.minutes / 60))


def _size(config: dict, model: str) -> ModelSize:
    model_id = config["models"][model].get("id")
    if model_id not in MODEL_SIZES:
        raise XltError(
            f"models.{model}: no parameter count for {model_id!r} in xlt.costs.MODEL_SIZES; known: "
            f"{', '.join(MODEL_SIZES)}"
        )
    return MODEL_SIZES[model_id]


def _gpu(resources: dict, where: str) -> Gpu:
    if resources["gpu_model"] not in GPUS:
        raise XltError(
            f"{where}.resources.gpu_model: {resources['gpu_model']!r} has no rates in xlt.costs.GPUS; "
            f"known: {', '.join(GPUS)}"
        )
    return GPUS[resources["gpu_model"]]


def _load_seconds(size: ModelSize, bytes_per_weight: float, readers: int = 1) -> float:
    """Reading the weights `readers` times on each node."""
    return readers * size.total * bytes_per_weight / (LOAD_GB_PER_S * 1e9)


def optimizer_steps(config: dict, model: str) -> int:
    """The optimizer steps of one fine-tuning job: steps per epoch (the examples over the
    examples per step: micro-batch x accumulation x GPUs) times epochs, as the Trainer
    counts them, or max_steps."""
    block = config["models"][model]["finetune"]
    if block["max_steps"]:
        return block["max_steps"]
    if config["finetune"]["examples"] is None:
        raise XltError(
            "finetune.examples: null (as many as the smallest source has); set the number to estimate the "
            "fine-tuning's cost"
        )
    return math.ceil(math.ceil(config["finetune"]["examples"] / examples_per_step(block)) * block["epochs"])


def examples_per_step(block: dict) -> int:
    """Micro-batch x accumulation x training processes (one per GPU under accelerate)."""
    processes = block["resources"]["gpu"] if block["launcher"]["type"] == "accelerate" else 1
    return block["micro_batch_size"] * block["gradient_accumulation"] * processes


def finetune_minutes(config: dict, model: str) -> float:
    """One fine-tuning job (one source language) of `model`, in minutes."""
    block = config["models"][model]["finetune"]
    resources, size = block["resources"], _size(config, model)
    gpu, gpus = _gpu(resources, f"models.{model}.finetune"), resources["gpu"]
    steps = optimizer_steps(config, model)
    tokens = steps * examples_per_step(block) * TRAIN_TOKENS_PER_EXAMPLE
    seconds = 6 * size.active * tokens / (gpus * gpu.bf16_tflops * 1e12 * EFFICIENCY["train"])
    nodes, readers = block["launcher"]["num_machines"], 1
    if block["launcher"]["type"] == "accelerate":
        readers = gpus // nodes
        link = (INFINIBAND_GB_PER_S if nodes > 1 else gpu.nvlink_gb_per_s) * 1e9 * EFFICIENCY["network"]
        gathers = steps * block["gradient_accumulation"] * (3 if block["gradient_checkpointing"] else 2)
        seconds += gathers * size.total * 2 * (gpus - 1) / gpus / link
    return (seconds + _load_seconds(size, 2, readers)) / 60


def predict_minutes(config: dict, model: str) -> float:
    """One predict job (one variant, every prompt and language) of `model`, in minutes."""
    block = config["models"][model]["inference"]
    resources, size = block["resources"], _size(config, model)
    gpu, gpus = _gpu(resources, f"models.{model}.inference"), resources["gpu"]
    items = 900 * len(config["languages"])
    rate = gpus * gpu.bf16_tflops * 1e12
    prefill = 2 * size.active * items * PROMPTS_PER_ITEM * PROMPT_TOKENS / (rate * EFFICIENCY["prefill"])
    new_tokens = config["prompts"]["direct_max_new_tokens"] + config["prompts"]["cot_max_new_tokens"]
    batch = GPU_BATCH if block["batch_size"] == "auto" else block["batch_size"]
    step_read = size.total * size.bytes_per_weight / (gpus * gpu.memory_tb_per_s * 1e12 * EFFICIENCY["memory"])
    decode = max(
        math.ceil(items / batch) * new_tokens * step_read,
        2 * size.active * items * new_tokens / (rate * EFFICIENCY["prefill"]),
    )
    return (prefill + decode + _load_seconds(size, size.bytes_per_weight)) / 60


def estimates(config: dict) -> list[Estimate]:
    """Every GPU stage of every model: finetune (a job per source) and predict (a job per
    variant)."""
    rows = []
    for model, entry in config["models"].items():
        for stage, block, minutes, jobs in (
            ("finetune", entry["finetune"], finetune_minutes(config, model), len(config["source_languages"])),
            (
                "predict",
                entry["inference"],
                predict_minutes(config, model),
                len(study_variants(config["source_languages"])),
            ),
        ):
            resources = block["resources"]
            rows.append(
                Estimate(model, stage, jobs, resources["gpu"], resources["gpu_model"], minutes, resources["runtime"])
            )
    return rows


BEGIN = "<!-- costs: generated by `python -m xlt.costs --write docs/slurm.md`; do not edit by hand -->"
END = "<!-- end of costs -->"


def render(rows: list[Estimate]) -> str:
    lines = [
        BEGIN,
        "| model | stage | jobs | GPUs per job | estimate per job (min) | runtime to configure (min) | "
        "configured runtime (min) | estimated GPU-hours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.model} | {row.stage} | {row.jobs} | {row.gpus} x {row.gpu_model} | {row.minutes:.0f} "
            f"| {row.runtime} | {row.configured} | {row.gpu_hours:.1f} |"
        )
    total = sum(row.gpu_hours for row in rows)
    lines += [
        "",
        f"Estimated total: {total:.0f} GPU-hours (the estimates' sum; the configured run times book "
        f"{sum(r.jobs * r.gpus * r.configured for r in rows) / 60:.0f}).",
        END,
    ]
    return "\n".join(lines)


def replace_block(text: str, block: str, path: Path) -> str:
    if BEGIN not in text or END not in text:
        raise XltError(f"{path}: no costs table to replace (the lines {BEGIN!r} and {END!r})")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + block + text[end:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config/paper.yaml"))
    parser.add_argument(
        "--write", type=Path, help="the Markdown file whose costs table to rewrite (default: print the table)"
    )
    args = parser.parse_args()
    block = render(estimates(load_config(args.config)))
    if args.write is None:
        print(block)
    else:
        write_text(replace_block(args.write.read_text(encoding="utf-8"), block, args.write), args.write)


if __name__ == "__main__":
    main()
