"""Fine-tuning throughput: xlt's finetune stage against the plain transformers recipe.

Both train LoRA (the model's configured settings) on the same examples (the source
language's train split, prompt tokens masked) for the same number of optimizer steps,
in this one process, one after the other:

- xlt: `xlt.finetune.finetune` as the workflow runs it: length-grouped batches, left
  padding, logits and loss on the answer positions only (`logits_to_keep`), checkpoints;
- baseline: a plain `transformers.Trainer` with every example padded to max_length
  (`DataCollatorForSeq2Seq(padding="max_length")`) and logits over every position.

Reported: real (non-padding) tokens trained per second, the model load and tokenization
included for both, and the share of padding in the batches. Seconds are counted twice:
wall time, and this process's CPU time (all its threads), which is what to compare on a
machine shared with other work, where the wall time of two runs made one after the other
depends on what else ran meanwhile.

Both read what the workflow prepared for the finetune job: the base model
(results/models/MODEL/base, prepared here if missing) and the source's training examples
(results/data/train/SOURCE.parquet: run `snakemake results/data/train/arb_Arab.parquet`
first), with the settings the finetune rule passes (`xlt.jobs.stage_settings`).

    python bench/finetune.py                        # embedded SmolLM2-135M, default config
    python bench/finetune.py --model gemma3-270m --steps 4

Writes bench/results/finetune.csv (one row per method, the CPU named) and prints the ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import pandas as pd  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))

from inference import cpu_name  # noqa: E402

from xlt import paths  # noqa: E402
from xlt.atomic import write_csv  # noqa: E402
from xlt.config import load_config  # noqa: E402
from xlt.data import read_prepared  # noqa: E402
from xlt.errors import XltError  # noqa: E402
from xlt.finetune import FinetuneSettings, build_examples, finetune  # noqa: E402
from xlt.inference.requests import uses_chat_template  # noqa: E402
from xlt.jobs import language_template, stage_settings  # noqa: E402
from xlt.models import ModelSpec, load_tokenizer, prepare_model, set_threads  # noqa: E402
from xlt.prompts import load_template  # noqa: E402
from xlt.settings import AdapterSettings  # noqa: E402


def training_examples(path: Path):
    """The source's prepared training examples, as the finetune job reads them."""
    if not path.is_file():
        raise XltError(f"{path}: no prepared training examples (run `snakemake {path.as_posix()}` first)")
    return read_prepared(path, split="train")


def run_xlt(base: Path, spec: ModelSpec, frame, template, settings: FinetuneSettings, work: Path) -> dict:
    started = time.monotonic()
    finetune(base, spec, frame, template, settings, work / "adapter", work / "checkpoints")
    seconds = time.monotonic() - started
    log = pd.read_csv(work / "adapter" / "train_log.csv")
    tokens = int(log["tokens"].sum())
    padded = int(round((log["tokens"] / (1 - log["padding_share"]) - log["tokens"]).sum()))
    return {
        "method": "xlt",
        "steps": len(log),
        "tokens": tokens,
        "padding_share": padded / (tokens + padded),
        "seconds": seconds,
    }


def run_baseline(base: Path, spec: ModelSpec, frame, template, settings: FinetuneSettings, work: Path) -> dict:
    """The recipe of the transformers and peft documentation, with the same examples
    and LoRA settings: pad every example to max_length, full logits."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from xlt.models import resolve_checkpoint

    started = time.monotonic()
    tokenizer = load_tokenizer(base, spec)
    tokenizer.padding_side = "right"
    examples = build_examples(
        frame, template, tokenizer, uses_chat_template(spec, tokenizer), spec.chat_template_kwargs, settings.max_length
    )
    location, revision = resolve_checkpoint(base)
    torch.manual_seed(settings.seed)
    base_model = AutoModelForCausalLM.from_pretrained(location, revision=revision, dtype=torch.float32)
    model = get_peft_model(
        base_model,
        LoraConfig(
            r=settings.r,
            # peft annotates lora_alpha as int but scales by alpha / r (as xlt.finetune passes it)
            lora_alpha=settings.alpha,  # type: ignore[arg-type]
            lora_dropout=settings.dropout,
            target_modules=settings.target_modules,
            task_type="CAUSAL_LM",
        ),
    )
    counts = {"tokens": 0, "padded": 0}

    class CountingTrainer(Trainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            real = int(inputs["attention_mask"].sum())
            counts["tokens"] += real
            counts["padded"] += inputs["attention_mask"].numel() - real
            return super().compute_loss(model, inputs, *args, **kwargs)

    args = TrainingArguments(
        output_dir=str(work / "baseline"),
        per_device_train_batch_size=settings.micro_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=settings.warmup_ratio,
        max_steps=settings.max_steps or -1,
        seed=settings.seed,
        save_strategy="no",
        logging_steps=1,
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
    )
    collator = DataCollatorForSeq2Seq(
        tokenizer, padding="max_length", max_length=settings.max_length, label_pad_token_id=-100
    )
    trainer = CountingTrainer(model=model, args=args, train_dataset=examples, data_collator=collator)
    trainer.train()
    seconds = time.monotonic() - started
    total = counts["tokens"] + counts["padded"]
    return {
        "method": "baseline_pad_to_max_length",
        "steps": trainer.state.global_step,
        "tokens": counts["tokens"],
        "padding_share": counts["padded"] / total,
        "seconds": seconds,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument(
        "--model", default="smollm2-135m", help="a model of the config (default: the embedded SmolLM2-135M)"
    )
    parser.add_argument(
        "--base", help="its prepared base folder (default: results/models/MODEL/base, prepared if missing)"
    )
    parser.add_argument("--source", help="the source language trained on (default: the config's first)")
    parser.add_argument(
        "--workdir", default=str(REPO), help="the run's working directory, whose results/ it reads (default: here)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=8,
        help="optimizer steps for each method (default 8: one epoch of the default's 32 examples)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1, as each job of the default run)"
    )
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "finetune.csv"))
    args = parser.parse_args(argv)

    config = load_config(args.config)
    source = args.source or config["source_languages"][0]
    job = stage_settings(config, "finetune", args.model)
    assert isinstance(job, AdapterSettings)
    spec = ModelSpec.from_config(args.model, job.entry())
    settings = replace(FinetuneSettings.from_config(job.finetune), max_steps=args.steps, dtype="float32")
    template = load_template(language_template(config, source))
    workdir = Path(args.workdir)
    frame = training_examples(workdir / paths.TRAINING.format(source=source))
    set_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="xlt-bench-") as scratch:
        work = Path(scratch)
        base = Path(args.base) if args.base else workdir / paths.BASE_MODEL.format(model=args.model)
        if not base.is_dir():
            base = work / "base"
            prepare_model(spec, base)
        rows = []
        for run in (run_xlt, run_baseline):
            cpu_started = time.process_time()
            row = run(base, spec, frame, template, settings, work)
            row["cpu_seconds"] = time.process_time() - cpu_started
            row["tokens_per_s"] = row["tokens"] / row["seconds"]
            row["tokens_per_cpu_s"] = row["tokens"] / row["cpu_seconds"]
            print(
                f"{row['method']}: {row['steps']} steps, {row['tokens']} tokens in {row['seconds']:.1f}s "
                f"({row['cpu_seconds']:.1f} CPU s) = {row['tokens_per_s']:.1f} tokens/s "
                f"({row['tokens_per_cpu_s']:.1f} per CPU s), padding {row['padding_share']:.1%}",
                flush=True,
            )
            rows.append(row)
    results = pd.DataFrame(rows).assign(
        model=args.model,
        source=source,
        examples=len(frame),
        threads=args.threads,
        max_length=settings.max_length,
        micro_batch_size=settings.micro_batch_size,
    )
    baseline = results.iloc[1]
    results["speedup_wall"] = results["tokens_per_s"] / baseline["tokens_per_s"]
    results["speedup_cpu"] = results["tokens_per_cpu_s"] / baseline["tokens_per_cpu_s"]
    results["cpu"] = cpu_name()
    write_csv(results, args.out)
    print(
        f"xlt / pad-to-max-length: {results['speedup_cpu'].iloc[0]:.2f}x tokens per CPU second, "
        f"{results['speedup_wall'].iloc[0]:.2f}x tokens per wall second -> {args.out}"
    )


if __name__ == "__main__":
    main()
