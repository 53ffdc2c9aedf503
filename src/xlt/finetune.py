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
import logging
import re
import shutil
import time
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from .atomic import atomic_path, write_csv, write_text
from .batching import pad, positions
from .errors import XltError
from .inference.requests import encode_prompt
from .models import ModelSpec
from .prompts import Template, answer_completion, render

logger = logging.getLogger(__name__)

IGNORE = -100
TRAIN_LOG = "train_log.csv"
FINGERPRINT = "fingerprint.json"
# Written by the Trainer after everything else of a checkpoint: a checkpoint without it
# was cut short by a kill and cannot be resumed from.
CHECKPOINT_COMPLETE = "trainer_state.json"
FINAL = "final"
# a linear layer of one routed expert (experts.3.down_proj); fused experts have none
LINEAR_EXPERT = re.compile(r"(^|\.)experts\.\d+\.")


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
    experts: bool = False
    max_steps: int | None = None
    quantization: str = "none"
    gradient_checkpointing: bool = False

    @classmethod
    def from_config(cls, block: dict) -> FinetuneSettings:
        """From a model's `finetune` block (LoRA settings nested under `lora`)."""
        flat = {**block, **block["lora"]}
        return cls(**{f.name: flat[f.name] for f in fields(cls) if f.name in flat})


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
                    f"item {item['item_id']} ({item['lang']}): the prompt without its passage is longer "
                    f"than finetune.max_length={max_length} tokens"
                )
            shortened = {**item, "flores_passage": tokenizer.decode(passage_ids[:keep])}
            prompt_ids = encode_prompt(tokenizer, render(shortened, template, "direct"), chat, chat_kwargs)
            if len(prompt_ids) <= budget:
                break
            keep -= max(1, len(prompt_ids) - budget)
    return {"input_ids": prompt_ids + target, "labels": [IGNORE] * len(prompt_ids) + target}


def build_examples(
    frame: pd.DataFrame, template: Template, tokenizer, chat: bool, chat_kwargs: dict, max_length: int
) -> list[dict]:
    return [
        build_example(item, template, tokenizer, chat, chat_kwargs, max_length) for item in frame.to_dict("records")
    ]


class AnswerOnlyCollator:
    """Left-pads a batch and keeps the labels (and logits) of the last positions only.

    Position ids count real tokens, so a left-padded row sees the same positions as in
    inference.
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict:
        input_ids, attention_mask = pad([f["input_ids"] for f in features], self.pad_id)
        labels, _ = pad([f["labels"] for f in features], IGNORE)
        width = input_ids.shape[1]
        first_supervised = width
        for feature in features:
            supervised = [k for k, label in enumerate(feature["labels"]) if label != IGNORE]
            if not supervised:
                raise XltError("a training example has no supervised token (its answer was masked)")
            first_supervised = min(first_supervised, width - len(feature["input_ids"]) + supervised[0])
        position_ids = positions(attention_mask)
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

    def take(self, accelerator=None) -> dict:
        """The counts since the last call, summed over every process of a multi-GPU run
        (a collective call there: every process must make it)."""
        real, padded, supervised = self.real, self.padded, self.supervised
        if accelerator is not None and accelerator.num_processes > 1:
            import torch

            summed = accelerator.reduce(
                torch.tensor([real, padded, supervised], device=accelerator.device), reduction="sum"
            )
            real, padded, supervised = (int(value) for value in summed.tolist())
        self.real = self.padded = self.supervised = 0
        total = real + padded
        return {"tokens": real, "supervised_tokens": supervised, "padding_share": padded / total if total else 0.0}


def fingerprint(settings: FinetuneSettings, examples: list[dict], base_dir: str) -> str:
    payload = json.dumps({"settings": settings.__dict__, "examples": examples, "base": str(base_dir)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def prepare_checkpoints(checkpoint_dir: Path, run_fingerprint: str) -> None:
    """Keep the complete checkpoints of this very run (same settings, data and base
    model) to resume from; discard checkpoints a kill cut short, and every checkpoint of
    another run."""
    marker = checkpoint_dir / FINGERPRINT
    if checkpoint_dir.exists():
        if marker.is_file() and json.loads(marker.read_text())["fingerprint"] == run_fingerprint:
            for partial in checkpoint_dir.glob("checkpoint-*"):
                if not (partial / CHECKPOINT_COMPLETE).is_file():
                    shutil.rmtree(partial)
            shutil.rmtree(checkpoint_dir / FINAL, ignore_errors=True)
            return
        shutil.rmtree(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True)
    write_text(json.dumps({"fingerprint": run_fingerprint}) + "\n", marker)


def last_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The complete checkpoint with the most steps, if any."""
    complete = [path for path in checkpoint_dir.glob("checkpoint-*") if (path / CHECKPOINT_COMPLETE).is_file()]
    return max(complete, key=lambda path: int(path.name.rsplit("-", 1)[1]), default=None)


def lora_targets(model, settings: FinetuneSettings, model_name: str) -> tuple[list[str], list[str]]:
    """(modules, parameters) to adapt, by full name.

    Dense layers as `target_modules` says: every linear layer but the output head and
    the experts' ("all-linear"), the linear layers of every attention block
    ("attention": q/k/v/o in Llama and Qwen, the low-rank projections of DeepSeek's
    multi-head latent attention), or the modules a list names (as name suffixes). The
    routed experts exactly when `experts` is on: fused 3-D expert weights as parameters
    (peft's target_parameters), per-expert linear layers as modules.
    """
    from torch import nn

    modules = dict(model.named_modules())
    linear = [
        name
        for name, module in modules.items()
        if isinstance(module, nn.Linear) and module is not model.get_output_embeddings()
    ]
    linear_experts = [name for name in linear if LINEAR_EXPERT.search(name)]
    fused_experts = [
        f"{name}.{param}"
        for name, module in modules.items()
        if name.rsplit(".", 1)[-1] == "experts"
        for param, value in module.named_parameters(recurse=False)
        if value.ndim == 3
    ]
    targets = settings.target_modules
    if targets == "all-linear":
        chosen = [name for name in linear if name not in linear_experts]
    elif targets == "attention":
        attention = [name for name, module in modules.items() if type(module).__name__.endswith("Attention")]
        chosen = [name for name in linear if name.rpartition(".")[0] in attention]
        if not chosen:
            raise XltError(
                f"model {model_name}: lora.target_modules 'attention' found no linear layer inside an "
                "attention module; list the module names instead"
            )
    else:
        chosen = [
            name
            for name in modules
            if any(name == t or name.endswith(f".{t}") for t in targets) and name not in linear_experts
        ]
        if not chosen:
            raise XltError(f"model {model_name}: lora.target_modules {targets} name no module of the model")
    if not settings.experts:
        return chosen, []
    if not fused_experts and not linear_experts:
        raise XltError(
            f"model {model_name}: lora.experts is true but the model has no expert layers (it is not a "
            "Mixture-of-Experts model)"
        )
    if fused_experts and settings.dropout:
        raise XltError(
            f"model {model_name}: lora.experts needs lora.dropout 0 (peft cannot apply dropout to fused "
            f"expert weights), not {settings.dropout}"
        )
    return chosen + linear_experts, fused_experts


def attach_lora(model, settings: FinetuneSettings, model_name: str):
    """The model with LoRA adapters on exactly the modules and parameters of
    `lora_targets`, checked after the fact: for Mixture-of-Experts architectures that
    transformers 5 changed, peft re-maps some layer names (gate_proj, up_proj,
    down_proj, gate) onto the fused experts and the router, which would silently adapt
    layers the config did not ask for."""
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer, ParamWrapper

    modules, parameters = lora_targets(model, settings, model_name)
    config = LoraConfig(
        r=settings.r,
        # peft annotates lora_alpha as int but scales by alpha / r; the schema allows any positive number.
        lora_alpha=settings.alpha,  # type: ignore[arg-type]
        lora_dropout=settings.dropout,
        target_modules=modules,
        target_parameters=parameters or None,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    prefix = "base_model.model."
    adapted = {
        name.removeprefix(prefix)
        for name, module in peft_model.named_modules()
        if isinstance(module, LoraLayer) and not isinstance(module, ParamWrapper)
    }
    # peft sets targeted_parameter_names on the LoRA model at run time; torch types an
    # attribute a module does not declare as Tensor | Module.
    adapted_parameters = set(peft_model.base_model.targeted_parameter_names)  # type: ignore[arg-type]
    unasked = sorted((adapted - set(modules)) | (adapted_parameters - set(parameters)))
    missing = sorted((set(modules) - adapted) | (set(parameters) - adapted_parameters))
    if unasked or missing:
        raise XltError(
            f"model {model_name}: peft adapted {len(unasked)} layer(s) the config did not ask for (e.g. "
            f"{unasked[:2]}) and "
            f"left out {len(missing)} it did (e.g. {missing[:2]}); on this architecture peft maps dense names onto the "
            "experts: use lora.target_modules 'attention', or an explicit list, with lora.experts as wanted"
        )
    return peft_model


def seeded_length_grouped_sampler(lengths: list[int], batch_size: int, seed: int):
    """transformers' length-grouped order (batches of similar length, drawn at random),
    drawn from the seed and the epoch alone: a run resumed mid-epoch sees the same
    batches as one that was never stopped, and every process of a multi-GPU run the
    same order."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class SeededLengthGroupedSampler(LengthGroupedSampler):
        epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            self.generator.manual_seed(seed + self.epoch)
            return super().__iter__()

    return SeededLengthGroupedSampler(batch_size, lengths=lengths, generator=torch.Generator())


def training_arguments(settings: FinetuneSettings, checkpoint_dir: Path, save_steps: int):
    """Created before the model is loaded: under DeepSpeed ZeRO-3 that is what makes
    from_pretrained load each process's shard only."""
    import torch
    from transformers import TrainingArguments

    from .models import torch_dtype

    on_gpu = torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=settings.micro_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=settings.warmup_ratio,  # a float below 1 is a share of all steps
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps or -1,
        logging_steps=1,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=2,
        seed=settings.seed,
        data_seed=settings.seed,
        gradient_checkpointing=settings.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        remove_unused_columns=False,
        report_to=[],
        disable_tqdm=True,
        use_cpu=not on_gpu,
        bf16=on_gpu and torch_dtype(settings.dtype) == torch.bfloat16,
        dataloader_pin_memory=on_gpu,
    )


def finetune(
    base_dir: str | Path,
    spec: ModelSpec,
    train_frame: pd.DataFrame,
    template: Template,
    settings: FinetuneSettings,
    adapter_dir: str | Path,
    checkpoint_dir: str | Path,
    save_steps: int = 10,
) -> None:
    """Train a LoRA adapter and write it, with train_log.csv, to `adapter_dir`.

    Runs as one process or as one of several started by `accelerate launch` (DeepSpeed
    ZeRO-3, FSDP or plain data parallelism): the first process alone logs, prepares the
    checkpoint folder and writes the adapter. Checkpoints go to `checkpoint_dir`; a
    rerun after a kill resumes from the last complete one, and they are removed once the
    adapter is written.
    """
    import torch
    from accelerate import PartialState
    from peft import prepare_model_for_kbit_training
    from transformers import PrinterCallback, Trainer, TrainerCallback

    from .inference.requests import uses_chat_template
    from .models import load_for_training, load_tokenizer

    tokenizer = load_tokenizer(base_dir, spec)
    chat = uses_chat_template(spec, tokenizer)
    examples = build_examples(train_frame, template, tokenizer, chat, spec.chat_template_kwargs, settings.max_length)
    if not examples:
        raise XltError(f"model {spec.name}: no training examples in the source language's train split")
    checkpoint_dir = Path(checkpoint_dir)
    args = training_arguments(settings, checkpoint_dir, save_steps)
    state = PartialState()
    say = logger.info if state.is_main_process else (lambda *_: None)
    if state.is_main_process:
        prepare_checkpoints(checkpoint_dir, fingerprint(settings, examples, str(base_dir)))
    state.wait_for_everyone()
    resume = last_checkpoint(checkpoint_dir)

    torch.manual_seed(settings.seed)
    model = load_for_training(base_dir, spec, dtype=settings.dtype, quantization=settings.quantization)
    if settings.quantization == "4bit":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=settings.gradient_checkpointing)
    model = attach_lora(model, settings, spec.name)
    trainable, total = model.get_nb_trainable_parameters()
    say(
        f"model {spec.name}: {len(examples)} examples, {state.num_processes} process(es), LoRA r={settings.r} on "
        f"{len(model.base_model.targeted_module_names)} modules ({settings.target_modules}) and "
        f"{len(model.base_model.targeted_parameter_names)} expert weights: {trainable:,} of {total:,} "
        "parameters trainable"
    )
    if resume is not None:
        say(f"resuming from {resume}")

    started = time.monotonic()
    lengths = [len(example["input_ids"]) for example in examples]

    class AnswerOnlyTrainer(Trainer):
        """Counts the tokens of each batch it trains on and logs them with the loss, so
        the counts travel with the log history into checkpoints and survive a resume."""

        counts = TokenCounts()

        def _get_train_sampler(self, train_dataset=None):
            return seeded_length_grouped_sampler(
                lengths, self.args.train_batch_size * self.args.gradient_accumulation_steps, self.args.seed
            )

        def compute_loss(self, model, inputs, *args, **kwargs):
            self.counts.add(inputs)
            return super().compute_loss(model, inputs, *args, **kwargs)

        def log(self, logs, *args, **kwargs):
            if "loss" in logs:
                logs.update(self.counts.take(self.accelerator), elapsed_s=round(time.monotonic() - started, 2))
            super().log(logs, *args, **kwargs)

    class LogLine(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            entry = state.log_history[-1]
            if "loss" in entry:
                say(
                    f"step {entry['step']}/{state.max_steps} loss {entry['loss']:.4f} lr "
                    f"{entry.get('learning_rate', 0):.2e} "
                    f"tokens {entry['tokens']} padding {entry['padding_share']:.1%}"
                )

    trainer = AnswerOnlyTrainer(
        model=model,
        args=args,
        train_dataset=examples,
        data_collator=AnswerOnlyCollator(tokenizer.pad_token_id),
        callbacks=[LogLine()],
    )
    trainer.remove_callback(PrinterCallback)  # LogLine says the same in one line per step
    trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)

    if trainer.is_fsdp_enabled:
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    final = checkpoint_dir / FINAL
    trainer.save_model(str(final))  # every process takes part: ZeRO-3 and FSDP gather the shards
    if state.is_main_process:
        history = pd.DataFrame([entry for entry in trainer.state.log_history if "loss" in entry])
        # A resumed run reads its history back from JSON with the keys sorted: fix the order.
        history = history[["step", "epoch", *sorted(set(history.columns) - {"step", "epoch"})]]
        with atomic_path(adapter_dir, is_dir=True) as tmp:
            for path in final.iterdir():
                if path.name != "training_args.bin":
                    shutil.copy2(path, tmp / path.name)
            write_csv(history, tmp / TRAIN_LOG)
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    state.wait_for_everyone()


def merge_adapter(
    base_dir: str | Path, spec: ModelSpec, adapter_dir: str | Path, out_dir: str | Path, dtype: str = "auto"
) -> None:
    """Write base + adapter as one plain checkpoint (with the tokenizer), for inference
    backends that cannot load a LoRA adapter, e.g. one on fused expert weights."""
    from .models import MANIFEST, load_model, load_tokenizer

    model = load_model(base_dir, spec, adapter_dir=adapter_dir, dtype=dtype, merge=True)
    tokenizer = load_tokenizer(base_dir, spec)
    with atomic_path(out_dir, is_dir=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / MANIFEST).write_text(
            json.dumps({"kind": "converted", "source": str(Path(adapter_dir).resolve())}, indent=2) + "\n",
            encoding="utf-8",
        )
    logger.info(f"model {spec.name}: merged {adapter_dir} into {out_dir}")
