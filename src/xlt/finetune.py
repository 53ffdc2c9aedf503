"""LoRA fine-tuning on the source language's training split, loss on the answer only.

Each example is the `direct` prompt of an item followed by its answer letter and the
end-of-sequence token; only those last tokens are supervised. Batches are left-padded,
so the supervised tokens of every row sit at the end and the output layer runs on
those positions alone (`logits_to_keep`): with a 262k-word vocabulary (Gemma) the
output layer over every position would cost more than the rest of the model.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from .atomic import atomic_path, write_csv, write_text
from .errors import XltError
from .models import ModelSpec, encode_prompt
from .prompts import Template, answer_completion, render

IGNORE = -100
TRAIN_LOG = "train_log.csv"
FINGERPRINT = "fingerprint.json"


@dataclass(frozen=True)
class FinetuneSettings:
    r: int
    alpha: float
    dropout: float
    target_modules: str | list
    learning_rate: float
    lr_scheduler: str
    warmup_ratio: float
    epochs: float
    micro_batch_size: int
    gradient_accumulation: int
    max_length: int
    seed: int
    dtype: str

    @classmethod
    def from_config(cls, block: dict) -> "FinetuneSettings":
        """From a model's `finetune` block (LoRA settings nested under `lora`)."""
        flat = {**block, **block["lora"]}
        return cls(**{f.name: flat[f.name] for f in fields(cls)})


def build_example(item: dict, template: Template, tokenizer, chat: bool, chat_kwargs: dict, max_length: int) -> dict:
    """input_ids and labels of one item; an over-long prompt loses the end of its
    passage, never its question, options or answer."""
    target = tokenizer(answer_completion(int(item["correct_answer_num"])), add_special_tokens=False)["input_ids"]
    target = target + [tokenizer.eos_token_id]
    prompt_ids = encode_prompt(tokenizer, render(item, template, "direct"), chat, chat_kwargs)
    budget = max_length - len(target)
    if len(prompt_ids) > budget:
        passage_ids = tokenizer(item["flores_passage"], add_special_tokens=False)["input_ids"]
        keep = len(passage_ids) - (len(prompt_ids) - budget)
        while True:
            if keep <= 0:
                raise XltError(
                    f"item {item['item_id']} ({item['lang']}): the prompt without its passage is longer than finetune.max_length={max_length} tokens"
                )
            shortened = {**item, "flores_passage": tokenizer.decode(passage_ids[:keep])}
            prompt_ids = encode_prompt(tokenizer, render(shortened, template, "direct"), chat, chat_kwargs)
            if len(prompt_ids) <= budget:
                break
            keep -= max(1, len(prompt_ids) - budget)
    return {"input_ids": prompt_ids + target, "labels": [IGNORE] * len(prompt_ids) + target}


def build_examples(frame: pd.DataFrame, template: Template, tokenizer, chat: bool, chat_kwargs: dict, max_length: int) -> list[dict]:
    return [build_example(item, template, tokenizer, chat, chat_kwargs, max_length) for item in frame.to_dict("records")]


class AnswerOnlyCollator:
    """Left-pads a batch and keeps the labels (and logits) of the last positions only.

    Position ids count real tokens, so a left-padded row sees the same positions as in
    inference.
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        rows = len(features)
        input_ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        labels = torch.full((rows, width), IGNORE, dtype=torch.long)
        attention_mask = torch.zeros((rows, width), dtype=torch.long)
        first_supervised = width
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            input_ids[row, width - n:] = torch.tensor(feature["input_ids"])
            labels[row, width - n:] = torch.tensor(feature["labels"])
            attention_mask[row, width - n:] = 1
            supervised = [k for k, label in enumerate(feature["labels"]) if label != IGNORE]
            if not supervised:
                raise XltError("a training example has no supervised token (its answer was masked)")
            first_supervised = min(first_supervised, width - n + supervised[0])
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        # The logit at position t predicts token t+1, so one more position than the
        # supervised span is needed.
        keep = width - first_supervised + 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "labels": labels[:, -keep:],
            "logits_to_keep": keep,
        }


class TokenCounts:
    """Real, padded and supervised tokens of the batches trained on since the last log."""

    def __init__(self):
        self.real = self.padded = self.supervised = 0

    def add(self, batch: dict) -> None:
        mask = batch["attention_mask"]
        real = int(mask.sum())
        self.real += real
        self.padded += mask.numel() - real
        self.supervised += int((batch["labels"] != IGNORE).sum())

    def take(self) -> dict:
        total = self.real + self.padded
        counts = {"tokens": self.real, "supervised_tokens": self.supervised, "padding_share": self.padded / total if total else 0.0}
        self.real = self.padded = self.supervised = 0
        return counts


def fingerprint(settings: FinetuneSettings, examples: list[dict], base_dir: str) -> str:
    payload = json.dumps({"settings": settings.__dict__, "examples": examples, "base": str(base_dir)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _resume_from(checkpoint_dir: Path, run_fingerprint: str) -> str | None:
    """Prepare the checkpoint folder; return the last complete checkpoint of this very
    run (same settings, data and base model) to resume from, or None. Checkpoints of
    other runs are discarded, and so is one a kill cut short: the Trainer writes
    trainer_state.json last, so a checkpoint without a readable one is incomplete."""
    marker = checkpoint_dir / FINGERPRINT
    if checkpoint_dir.exists():
        try:
            same = json.loads(marker.read_text())["fingerprint"] == run_fingerprint
        except (OSError, ValueError, KeyError):
            same = False
        if same:
            for checkpoint in sorted(checkpoint_dir.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[-1]), reverse=True):
                try:
                    json.loads((checkpoint / "trainer_state.json").read_text())
                    return str(checkpoint)
                except (OSError, ValueError):
                    shutil.rmtree(checkpoint)
            return None
        shutil.rmtree(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True)
    write_text(json.dumps({"fingerprint": run_fingerprint}) + "\n", marker)
    return None


def finetune(
    base_dir: str | Path,
    spec: ModelSpec,
    train_frame: pd.DataFrame,
    template: Template,
    settings: FinetuneSettings,
    adapter_dir: str | Path,
    checkpoint_dir: str | Path,
    save_steps: int = 10,
    log=print,
) -> None:
    """Train a LoRA adapter and write it, with train_log.csv, to `adapter_dir`.
    Checkpoints go to `checkpoint_dir`; a rerun after a kill resumes from the last one,
    and they are removed once the adapter is written."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    from .models import load_model, load_tokenizer, uses_chat_template

    tokenizer = load_tokenizer(base_dir, spec)
    chat = uses_chat_template(spec, tokenizer)
    examples = build_examples(train_frame, template, tokenizer, chat, spec.chat_template_kwargs, settings.max_length)
    if not examples:
        raise XltError(f"model {spec.name}: no training examples in the source language's train split")
    checkpoint_dir = Path(checkpoint_dir)
    resume = _resume_from(checkpoint_dir, fingerprint(settings, examples, str(base_dir)))

    torch.manual_seed(settings.seed)
    model = load_model(base_dir, spec, dtype=settings.dtype)
    lora = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    trainable, total = model.get_nb_trainable_parameters()
    log(f"model {spec.name}: {len(examples)} examples, LoRA r={settings.r} on {settings.target_modules}: {trainable:,} of {total:,} parameters trainable")

    on_gpu = torch.cuda.is_available()
    dtype = model.dtype
    args = TrainingArguments(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=settings.micro_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=settings.warmup_ratio,  # a float below 1 is a share of all steps
        num_train_epochs=settings.epochs,
        logging_steps=1,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=2,
        seed=settings.seed,
        data_seed=settings.seed,
        train_sampling_strategy="group_by_length",
        remove_unused_columns=False,
        report_to=[],
        disable_tqdm=True,
        use_cpu=not on_gpu,
        bf16=on_gpu and dtype == torch.bfloat16,
        dataloader_pin_memory=on_gpu,
    )

    started = time.monotonic()

    class AnswerOnlyTrainer(Trainer):
        """Counts the tokens of each batch it trains on and logs them with the loss, so
        the counts travel with the log history into checkpoints and survive a resume."""

        counts = TokenCounts()

        def compute_loss(self, model, inputs, *args, **kwargs):
            self.counts.add(inputs)
            return super().compute_loss(model, inputs, *args, **kwargs)

        def log(self, logs, *args, **kwargs):
            if "loss" in logs:
                logs.update(self.counts.take(), elapsed_s=round(time.monotonic() - started, 2))
            super().log(logs, *args, **kwargs)

    class LogLine(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            entry = state.log_history[-1]
            if "loss" in entry:
                log(
                    f"step {entry['step']}/{state.max_steps} loss {entry['loss']:.4f} lr {entry.get('learning_rate', 0):.2e} "
                    f"tokens {entry['tokens']} padding {entry['padding_share']:.1%}"
                )

    trainer = AnswerOnlyTrainer(
        model=model, args=args, train_dataset=examples, data_collator=AnswerOnlyCollator(tokenizer.pad_token_id), callbacks=[LogLine()]
    )
    trainer.remove_callback(PrinterCallback)  # LogLine says the same in one line per step
    if resume:
        log(f"resuming from {resume}")
    trainer.train(resume_from_checkpoint=resume)

    history = pd.DataFrame([entry for entry in trainer.state.log_history if "loss" in entry])
    # A resumed run reads its history back from JSON with the keys sorted: fix the order.
    history = history[["step", "epoch", *sorted(set(history.columns) - {"step", "epoch"})]]
    with atomic_path(adapter_dir, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        write_csv(history, tmp / TRAIN_LOG)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
