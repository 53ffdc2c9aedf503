"""Model-touching code on tiny random-init models: one dense with a chat template, one
Mixture-of-Experts without."""

import pandas as pd
import pytest
from belebele_rows import ENGLISH, TINY_MODELS, items

from xlt.finetune import IGNORE, AnswerOnlyCollator, FinetuneSettings, TokenCounts, build_example, finetune
from xlt.inference.engine import answer_complete, generate
from xlt.inference.predictions import prediction_frames
from xlt.inference.requests import build_requests, encode, encode_prompt, uses_chat_template
from xlt.models import ModelSpec, load_model, load_tokenizer
from xlt.paths import COT_COLUMNS, JOB_CELLS, PREDICTION_COLUMNS
from xlt.prompts import answer_completion, render

TEMPLATE, MODELS = ENGLISH, TINY_MODELS


def settings(**overrides):
    values = dict(
        r=4,
        alpha=8,
        dropout=0.0,
        target_modules="all-linear",
        learning_rate=0.01,
        lr_scheduler="constant",
        warmup_ratio=0.0,
        epochs=1,
        micro_batch_size=2,
        gradient_accumulation=1,
        max_length=512,
        seed=0,
        dtype="float32",
    )
    values.update(overrides)
    return FinetuneSettings(**values)


@pytest.mark.parametrize("name", MODELS)
def test_chat_template_is_used_only_where_the_tokenizer_has_one(prepared_tiny, name):
    spec = ModelSpec(name)
    tokenizer = load_tokenizer(prepared_tiny[name], spec)
    assert uses_chat_template(spec, tokenizer) == (name == "tiny-dense")
    ids = encode_prompt(tokenizer, render(items(1).iloc[0], TEMPLATE, "direct"), uses_chat_template(spec, tokenizer))
    text = tokenizer.decode(ids)
    assert text.endswith("Answer:")
    assert ("<|im_start|>assistant" in text) == (name == "tiny-dense")


@pytest.mark.parametrize("name", MODELS)
def test_answer_tokens_alone_are_supervised(prepared_tiny, name):
    spec = ModelSpec(name)
    tokenizer = load_tokenizer(prepared_tiny[name], spec)
    item = items(1).iloc[0].to_dict()
    example = build_example(item, TEMPLATE, tokenizer, uses_chat_template(spec, tokenizer), {}, max_length=512)
    supervised = [t for t, label in zip(example["input_ids"], example["labels"]) if label != IGNORE]
    assert tokenizer.decode(supervised) == answer_completion(2) + tokenizer.eos_token
    first = example["labels"].index(next(label for label in example["labels"] if label != IGNORE))
    assert all(label == IGNORE for label in example["labels"][:first])


def test_overlong_example_loses_passage_not_answer(prepared_tiny):
    spec = ModelSpec("tiny-dense")
    tokenizer = load_tokenizer(prepared_tiny["tiny-dense"], spec)
    item = items(1).iloc[0].to_dict()
    item["flores_passage"] = "word " * 400
    example = build_example(item, TEMPLATE, tokenizer, True, {}, max_length=300)
    assert len(example["input_ids"]) <= 300
    text = tokenizer.decode(example["input_ids"])
    assert "Question: How many apples" in text and text.endswith(" B<|im_end|>")
    assert text.count("word") < 400


def test_collator_left_pads_and_keeps_only_answer_logits():
    collator = AnswerOnlyCollator(pad_id=0)
    batch = collator(
        [
            {"input_ids": [5, 6, 7, 8, 9], "labels": [IGNORE, IGNORE, IGNORE, 8, 9]},
            {"input_ids": [5, 6, 9], "labels": [IGNORE, 6, 9]},
        ]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [0, 0, 5, 6, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4], [0, 0, 0, 1, 2]]
    assert batch["logits_to_keep"] == 3
    assert batch["labels"].tolist() == [[IGNORE, 8, 9], [IGNORE, 6, 9]]
    counts = TokenCounts()
    counts.add(batch)
    assert counts.take() == {"tokens": 8, "supervised_tokens": 4, "padding_share": pytest.approx(2 / 10)}


@pytest.mark.parametrize("name", MODELS)
def test_logits_to_keep_gives_the_same_loss_as_full_logits(prepared_tiny, name):
    import torch

    spec = ModelSpec(name)
    tokenizer = load_tokenizer(prepared_tiny[name], spec)
    model = load_model(prepared_tiny[name], spec, dtype="float32")
    chat = uses_chat_template(spec, tokenizer)
    examples = [build_example(item, TEMPLATE, tokenizer, chat, {}, 512) for item in items(3).to_dict("records")]
    batch = AnswerOnlyCollator(tokenizer.pad_token_id)(examples)
    with torch.no_grad():
        short = model(**batch).loss
        full_labels = torch.full_like(batch["input_ids"], IGNORE)
        full_labels[:, -batch["labels"].shape[1] :] = batch["labels"]
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=batch["position_ids"], labels=full_labels).loss
    assert torch.isfinite(short)
    assert short.item() == pytest.approx(full.item(), rel=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_finetune_lowers_the_loss_and_writes_adapter(prepared_tiny, name, tmp_path):
    adapter = tmp_path / "adapter"
    frame = items(8)
    finetune(prepared_tiny[name], ModelSpec(name), frame, TEMPLATE, settings(epochs=6), adapter, tmp_path / "ckpt", log=lambda *_: None)
    log = pd.read_csv(adapter / "train_log.csv")
    assert {"loss", "learning_rate", "tokens", "padding_share", "supervised_tokens"} <= set(log.columns)
    assert log["loss"].iloc[-3:].mean() < log["loss"].iloc[:3].mean()
    assert (adapter / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "ckpt").exists()
    import json

    targets = {name.rsplit(".", 1)[-1] for name in json.loads((adapter / "adapter_config.json").read_text())["target_modules"]}
    if name == "tiny-moe":
        assert targets == {"q_proj", "k_proj", "v_proj", "o_proj"}
    else:
        assert {"q_proj", "gate_proj", "down_proj"} <= targets


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("prompt", ["direct", "cot"])
def test_generation_is_batched_greedy_and_order_preserving(prepared_tiny, name, prompt):
    spec = ModelSpec(name)
    tokenizer = load_tokenizer(prepared_tiny[name], spec)
    model = load_model(prepared_tiny[name], spec)
    frame = items(5)
    requests = build_requests(frame, {"eng_Latn": TEMPLATE}, prompt, "generate", 6)
    chat = uses_chat_template(spec, tokenizer)
    encoded = [encode(tokenizer, request, chat) for request in requests]
    batched = generate(model, tokenizer, encoded, max_new_tokens=6, batch_size=4, progress=False)
    single = generate(model, tokenizer, encoded, max_new_tokens=6, batch_size=1, progress=False)
    assert [result.text for result in batched] == [result.text for result in single]
    frames = prediction_frames(requests, batched, name, "base")
    assert set(frames) == set(JOB_CELLS[prompt])
    predictions = frames[prompt]
    assert list(predictions.columns) == [*PREDICTION_COLUMNS, *COT_COLUMNS]
    assert predictions["item_id"].tolist() == frame["item_id"].tolist()
    assert (predictions["n_output_tokens"] <= 6).all()
    prefix = "Answer:" if prompt == "direct" else "Let's think step by step."
    assert predictions["raw_output"].str.startswith(prefix).all()


def test_answer_complete_waits_for_the_label_to_close():
    assert not answer_complete("Answer:")
    assert not answer_complete("Answer: B")
    assert answer_complete("Answer: B.")
    assert answer_complete("Answer: B\n")
    assert not answer_complete("Answer: Because")
    assert not answer_complete("התשובה: ב\ufffd")  # the next token may complete "בסתיו"
    assert answer_complete("התשובה: ב.")
