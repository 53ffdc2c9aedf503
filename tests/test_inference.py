"""The inference engine on the tiny models: our decoding loop against transformers'
`generate`, resumable shards, label scoring (loglik, the choice cell, the forced answer
after chain of thought) against a plain full forward pass, and the vLLM backend's
requests (vLLM itself cannot run here: a stand-in module records what it is asked)."""

from __future__ import annotations

import dataclasses
import json
import sys
import types

import pandas as pd
import pytest
from belebele_rows import ENGLISH, TINY_MODELS, items
from generations import assert_same_generations

from xlt.batching import plan_batches, plan_waves
from xlt.errors import XltError
from xlt.inference.engine import DecodeState, generate, greedy_batch, merge_states, resolve_batch_size
from xlt.inference.predictions import prediction_frames
from xlt.inference.requests import (
    Encoded,
    Generation,
    build_requests,
    encode,
    encode_pair,
    encode_prompt,
    uses_chat_template,
)
from xlt.inference.shards import Shard, identity, run_fingerprint, shard_path
from xlt.inference.stopping import answer_complete, stop_token_ids
from xlt.models import ModelSpec, load_model, load_tokenizer
from xlt.paths import COT_COLUMNS, JOB_CELLS, PREDICTION_COLUMNS
from xlt.prompts import render

TEMPLATE, MODELS = ENGLISH, TINY_MODELS


def loaded(prepared_tiny, name):
    spec = ModelSpec(name)
    return spec, load_tokenizer(prepared_tiny[name], spec), load_model(prepared_tiny[name], spec, dtype="float32")


def encoded(spec, tokenizer, frame, prompt, scoring="generate", max_new_tokens=20):
    """A job's requests and their encoding with the model's tokenizer."""
    requests = build_requests(frame, {"eng_Latn": TEMPLATE}, prompt, scoring, max_new_tokens)
    chat = uses_chat_template(spec, tokenizer)
    return requests, [encode(tokenizer, request, chat) for request in requests]


@pytest.mark.parametrize("name", MODELS)
def test_decoding_loop_matches_transformers_generate(prepared_tiny, name):
    import torch

    spec, tokenizer, model = loaded(prepared_tiny, name)
    _, requests = encoded(spec, tokenizer, items(4), "cot")
    eos = stop_token_ids(model.generation_config, tokenizer)
    for request in requests:
        ours = greedy_batch(model, [request.input_ids], 20, tokenizer.pad_token_id, eos, lambda row, ids: False)[
            0
        ].tokens
        with torch.no_grad():
            theirs = model.generate(
                torch.tensor([request.input_ids]),
                max_new_tokens=20,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        assert ours == theirs[0, len(request.input_ids) :].tolist()


@pytest.mark.parametrize("name", MODELS)
def test_rows_leave_the_batch_without_changing_the_others(prepared_tiny, name):
    spec, tokenizer, model = loaded(prepared_tiny, name)
    _, requests = encoded(spec, tokenizer, items(5), "cot")
    eos = stop_token_ids(model.generation_config, tokenizer)
    rows_ = [r.input_ids for r in requests]
    stop_early = {0: 3, 2: 5}  # rows 0 and 2 "answer" after 3 and 5 tokens
    batched = greedy_batch(
        model, rows_, 16, tokenizer.pad_token_id, eos, lambda row, ids: len(ids) == stop_early.get(row)
    )
    for row, outcome in enumerate(batched):
        alone = greedy_batch(
            model,
            [rows_[row]],
            16,
            tokenizer.pad_token_id,
            eos,
            lambda _, got: len(got) == stop_early.get(row),  # noqa: B023
        )[0]
        assert outcome.tokens == alone.tokens
        if row in stop_early:
            assert len(outcome.tokens) == stop_early[row] and outcome.stop_reason == "answer"


def test_waves_and_prefill_chunks_are_longest_first_and_stable():
    lengths = [3, 9, 5, 9, 1]
    assert plan_waves(lengths, 2) == [[1, 3], [2, 0], [4]]
    assert plan_waves(lengths, 2) == plan_waves(list(lengths), 2)
    assert plan_batches(lengths, 5) == [[1, 3, 2], [0], [4]]  # 9, 9, 5 pads 15%; 3 would pad 28%, 1 after 3 33%
    assert plan_batches(lengths, 2) == [[1, 3], [2, 0], [4]]
    assert plan_batches(lengths, 5, padding_limit=0.0) == [[1, 3], [2], [0], [4]]  # a CPU: equal lengths only


def tiny_sliding_window_model():
    """A Gemma-3 text model with a 16-token sliding window on two of its three layers,
    so prompts can be longer than the window."""
    import torch
    from transformers import AutoModelForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        sliding_window=16,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval()


def wave_model(prepared_tiny, name):
    if name == "tiny-sliding":
        return tiny_sliding_window_model(), 0
    _, tokenizer, model = loaded(prepared_tiny, name)
    return model, tokenizer.pad_token_id


@pytest.mark.parametrize("name", [*MODELS, "tiny-sliding"])
def test_a_wave_of_uneven_prompts_decodes_as_each_prompt_alone(prepared_tiny, name):
    """Prompts of 5 to 40 tokens make several prefill chunks, joined into one decoding
    batch (for the sliding model, past its 16-token window), and rows stop at different
    steps; each row must get the tokens model.generate gives it alone, unpadded."""
    import torch

    model, pad_id = wave_model(prepared_tiny, name)
    generator = torch.Generator().manual_seed(1)
    rows_ = [torch.randint(5, 250, (length,), generator=generator).tolist() for length in (40, 38, 21, 20, 9, 5)]
    assert len(plan_batches([len(ids) for ids in rows_], len(rows_))) > 1
    stop_after = {0: 3, 3: 5, 4: 1}
    with torch.inference_mode():
        wave = greedy_batch(model, rows_, 12, pad_id, {-1}, lambda row, ids: len(ids) == stop_after.get(row))
        for row, ids in enumerate(rows_):
            alone = model.generate(
                torch.tensor([ids]), max_new_tokens=stop_after.get(row, 12), do_sample=False, pad_token_id=pad_id
            )
            assert wave[row].tokens == alone[0, len(ids) :].tolist(), f"row {row}"


def test_chunks_are_decoded_one_after_another_when_their_caches_cannot_be_joined(prepared_tiny, monkeypatch):
    """A cache layer of a kind the join does not know (linear attention, indexers) is
    not joined: its chunks are decoded in turn, to the same tokens."""
    import torch

    from xlt.inference import engine, forward

    model, pad_id = wave_model(prepared_tiny, "tiny-dense")
    rows_ = [list(range(10, 10 + length)) for length in (30, 29, 8, 7)]
    with torch.inference_mode():
        joined = greedy_batch(model, rows_, 6, pad_id, {-1}, lambda row, ids: False)
        state = DecodeState([0], *forward.prefill(model, [rows_[0]], pad_id))
        state.cache.layers[0] = type("LinearAttentionLayer", (), {"is_initialized": True})()
        assert merge_states([state], 6) is None
        monkeypatch.setattr(engine, "merge_states", lambda states, new_tokens: None)
        in_turn = greedy_batch(model, rows_, 6, pad_id, {-1}, lambda row, ids: False)
    assert in_turn == joined


def test_auto_batch_size_depends_on_the_device():
    cpu = types.SimpleNamespace(device=types.SimpleNamespace(type="cpu"))
    gpu = types.SimpleNamespace(device=types.SimpleNamespace(type="cuda"))
    assert resolve_batch_size("auto", cpu) < resolve_batch_size("auto", gpu)
    assert resolve_batch_size(7, gpu) == 7


def test_shard_keeps_whole_batches_and_drops_a_torn_line(tmp_path):
    path = tmp_path / ".predict.jsonl"
    identities = [identity(f"eng_Latn/p{k}#1", "cot", {"input_ids": [k, 7]}) for k in range(4)]

    def opened(fingerprint: str) -> Shard:
        return Shard(path, fingerprint, identities, [1, 0, 2, 0], lambda result: isinstance(result, dict))

    shard = opened("run-1")
    shard.append(0, {3: {"text": "Answer: B.", "n": 4}, 1: {"text": "ጥያቄ", "n": 2}})
    shard.append(1, {0: {"text": "x", "n": 1}})
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"wave": 2, "results": [{"index": 2, "request": {"item": "half')
    reopened = opened("run-1")
    assert reopened.completed() == {
        3: {"text": "Answer: B.", "n": 4},
        1: {"text": "ጥያቄ", "n": 2},
        0: {"text": "x", "n": 1},
    }
    assert reopened.rejected == 1
    assert all(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    assert opened("run-2").completed() == {}
    assert run_fingerprint(a=1, b=[1, 2]) == run_fingerprint(b=[1, 2], a=1) != run_fingerprint(a=2, b=[1, 2])
    assert (
        shard_path(["results/predictions/m/base/cot/eng_Latn.parquet"]).as_posix()
        == "results/predictions/m/base/cot/.predict.jsonl"
    )


def test_generate_reads_finished_results_back_instead_of_recomputing(prepared_tiny):
    """Results given as done are returned as they are and not recorded again; every
    other result is recorded with its wave, each once."""
    spec, tokenizer, model = loaded(prepared_tiny, "tiny-dense")
    asked, requests = encoded(spec, tokenizer, items(4), "direct", max_new_tokens=4)
    requests = [
        request for ask, request in zip(asked, requests) if not ask.rotation
    ]  # one request per item: waves of items
    plan = plan_waves([len(r.input_ids) for r in requests], 2)
    stored = {
        index: Generation(f"from the shard {index}", 7, 1, "answer", [-1.0, -2.0, -3.0, -4.0]) for index in plan[0]
    }
    recorded = []
    generations = generate(
        model,
        tokenizer,
        requests,
        2,
        done=stored,
        record=lambda wave, results: recorded.append((wave, results)),
        progress=False,
    )
    fresh = generate(model, tokenizer, requests, 2, progress=False)
    for index in range(len(requests)):
        expected = stored[index] if index in plan[0] else fresh[index]
        assert generations[index] == expected
    assert [(wave, sorted(results)) for wave, results in recorded] == [(1, sorted(plan[1]))]


def test_context_and_continuation_split_as_the_harness_does(prepared_tiny):
    tokenizer = load_tokenizer(prepared_tiny["tiny-dense"], ModelSpec("tiny-dense"))
    context, continuation = encode_pair(tokenizer, "Answer: ", "B")
    assert tokenizer.decode(context) == "Answer:"
    assert tokenizer.decode(continuation) == " B"


def full_sequence_scores(model, context_ids, labels) -> list[float]:
    """The plain way: each label appended to the context, one unpadded forward pass
    per label, the label's tokens summed."""
    import torch

    scores = []
    for ids in labels:
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([context_ids + ids])).logits[0].float()
        logprobs = torch.log_softmax(logits[len(context_ids) - 1 : -1], dim=-1)
        scores.append(float(logprobs[torch.arange(len(ids)), torch.tensor(ids)].sum()))
    return scores


@pytest.mark.parametrize("name", MODELS)
def test_one_pass_over_the_shared_context_scores_like_four_full_passes(prepared_tiny, name):
    """loglik scoring: the harness's prompt for the direct cell, the study's direct
    prompt for the choice cell, no token generated."""
    spec, tokenizer, model = loaded(prepared_tiny, name)
    requests, encoded_ = encoded(spec, tokenizer, items(5), "direct", scoring="loglik", max_new_tokens=0)
    assert [request.cells for request in requests[:2]] == [("direct",), ("choice",)] and requests[0].harness
    assert all(len(ids) == 2 for r in encoded_ for ids in r.label_ids)  # the byte tokenizer splits " A"
    fast = generate(model, tokenizer, encoded_, 3, progress=False)
    for result, request in zip(fast, encoded_):
        assert result.label_logprobs == pytest.approx(
            full_sequence_scores(model, request.input_ids, request.label_ids), abs=1e-4
        )
        assert result.n_output_tokens == 0
    frames = prediction_frames(requests, fast, name, "base")
    best = {
        cells: [
            max(range(4), key=res.label_logprobs.__getitem__) + 1 for r, res in zip(requests, fast) if r.cells == cells
        ]
        for cells in [("direct",), ("choice",)]
    }
    assert frames["direct"]["parsed_choice"].tolist() == best[("direct",)]
    assert frames["direct"]["raw_output"].tolist() == [f"Answer: {'ABCD'[b - 1]}" for b in best[("direct",)]]
    assert frames["choice"]["parsed_choice"].tolist() == best[("choice",)]


@pytest.mark.parametrize("name", MODELS)
def test_choice_cell_is_the_direct_prompts_label_logprobs(prepared_tiny, name):
    """The direct job's label log-probabilities at the answer position equal a plain
    forward pass over the prompt and each label (to 1e-5), and scoring them leaves the
    generated text as it is without them."""
    spec, tokenizer, model = loaded(prepared_tiny, name)
    requests, encoded_ = encoded(spec, tokenizer, items(5), "direct", max_new_tokens=6)
    assert all(
        r.scores_prompt
        and r.label_ids == [tokenizer.encode(f" {letter}", add_special_tokens=False) for letter in "ABCD"]
        for r in encoded_
    )
    results = generate(model, tokenizer, encoded_, 3, progress=False)
    unscored = generate(
        model, tokenizer, [dataclasses.replace(r, scores_prompt=False) for r in encoded_], 3, progress=False
    )
    for result, plain, request in zip(results, unscored, encoded_):
        assert result.label_logprobs == pytest.approx(
            full_sequence_scores(model, request.input_ids, request.label_ids), abs=1e-5
        )
        assert (result.text, result.n_output_tokens, result.stop_reason) == (
            plain.text,
            plain.n_output_tokens,
            plain.stop_reason,
        )
        assert plain.label_logprobs is None
    frames = prediction_frames(requests, results, name, "base")
    choice = frames["choice"]
    shown = [result for request, result in zip(requests, results) if request.cells]  # rotation 0, the options as shown
    assert choice["parsed_choice"].tolist() == [max(range(4), key=r.label_logprobs.__getitem__) + 1 for r in shown]
    assert [list(json.loads(raw).values()) for raw in choice["raw_output"]] == [r.label_logprobs for r in shown]
    assert choice["stop_reason"].isna().all() and (choice["n_output_tokens"] == 0).all()
    assert frames["direct"]["raw_output"].tolist() == ["Answer:" + r.text for r in shown]


@pytest.mark.parametrize("name", MODELS)
def test_forced_answer_is_the_likeliest_label_after_continuation_and_answer_phrase(prepared_tiny, name):
    """Rows that stop by end of sequence (here: a token the rows happen to write) or by
    the budget get the answer phrase and their labels scored from the cache; the label
    is the argmax of a plain forward pass over prompt + continuation + phrase + label."""
    import torch

    spec, tokenizer, model = loaded(prepared_tiny, name)
    requests, encoded_ = encoded(spec, tokenizer, items(4), "cot", max_new_tokens=10)
    rows_ = [r.input_ids for r in encoded_]
    forced = [(r.forced_ids, r.label_ids) for r in encoded_]
    assert tokenizer.decode(encoded_[0].forced_ids) == "\nAnswer:"
    with torch.inference_mode():
        free = greedy_batch(model, rows_, 10, tokenizer.pad_token_id, {-1}, lambda row, ids: False)
        # the rows end at a token row 0 writes; or row 2 "states an answer" after 3 tokens and
        # the others run to the budget
        by_eos = greedy_batch(
            model, rows_, 10, tokenizer.pad_token_id, {free[0].tokens[4]}, lambda row, ids: False, forced=forced
        )
        by_budget = greedy_batch(
            model, rows_, 10, tokenizer.pad_token_id, {-1}, lambda row, ids: row == 2 and len(ids) == 3, forced=forced
        )
    assert by_eos[0].stop_reason == "eos" and len(by_eos[0].tokens) <= 5
    assert [outcome.stop_reason for outcome in by_budget] == ["budget", "budget", "answer", "budget"]
    for row, outcome in [*enumerate(by_eos), *enumerate(by_budget)]:
        if outcome.stop_reason == "answer":
            assert outcome.forced_logprobs is None
            continue
        continuation = outcome.tokens[:-1] if outcome.stop_reason == "eos" else outcome.tokens
        slow = full_sequence_scores(
            model, rows_[row] + continuation + encoded_[row].forced_ids, encoded_[row].label_ids
        )
        assert outcome.forced_logprobs == pytest.approx(slow, abs=1e-4)
        assert max(range(4), key=outcome.forced_logprobs.__getitem__) == max(range(4), key=slow.__getitem__)
    results = generate(model, tokenizer, encoded_, 4, progress=False)
    frame = prediction_frames(requests, results, name, "base")["cot"]
    assert set(frame["stop_reason"]) <= {"answer", "eos", "budget"}
    for result, (_, row) in zip(results, frame.iterrows()):
        stated = row["parsed_choice"]
        expected = stated if not pd.isna(stated) else max(range(4), key=result.forced_logprobs.__getitem__) + 1
        assert row["forced_choice"] == expected


class _FakeVllm:
    """Records what the backend asks of vLLM and answers with fixed token ids; a
    request that forces a token gets -id/1000 as its log-probability."""

    def __init__(self, answer_ids, logprobs_mode=None):
        self.answer_ids = answer_ids
        self.calls = []
        self.engine = None
        fake = self

        class LLM:
            def __init__(self, **kwargs):
                fake.engine = kwargs
                # what the engine reports it runs with (vLLM's ModelConfig), the asked mode unless the test overrides it
                mode = logprobs_mode or kwargs.get("logprobs_mode", "raw_logprobs")
                self.llm_engine = types.SimpleNamespace(model_config=types.SimpleNamespace(logprobs_mode=mode))

            def generate(self, prompts, sampling, lora_request=None):
                fake.calls.append({"prompts": prompts, "sampling": sampling, "lora": lora_request})
                if isinstance(sampling, list):
                    forced = [args["allowed_token_ids"][0] for args in sampling]
                    return [
                        types.SimpleNamespace(
                            outputs=[
                                types.SimpleNamespace(logprobs=[{token: types.SimpleNamespace(logprob=-token / 1000)}])
                            ]
                        )
                        for token in forced
                    ]
                return [
                    types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=fake.answer_ids)]) for _ in prompts
                ]

        self.module = types.SimpleNamespace(LLM=LLM, SamplingParams=lambda **kwargs: kwargs)
        self.lora_module = types.SimpleNamespace(LoRARequest=lambda name, number, path: (name, number, path))


def vllm_backend(prepared_tiny, monkeypatch, study_config, tmp_path, answer_ids, logprobs_mode=None):
    from xlt.inference.vllm import VLLMBackend

    fake = _FakeVllm(answer_ids, logprobs_mode)
    monkeypatch.setitem(sys.modules, "vllm", fake.module)
    monkeypatch.setitem(sys.modules, "vllm.lora", types.SimpleNamespace(request=fake.lora_module))
    monkeypatch.setitem(sys.modules, "vllm.lora.request", fake.lora_module)
    entry = json.loads(json.dumps(study_config["models"]["smollm2-135m"]))
    entry["inference"].update(backend="vllm", tensor_parallel_size=4)
    adapter = tmp_path / "adapter"
    adapter.mkdir(exist_ok=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 12}))
    spec, tokenizer, _ = loaded(prepared_tiny, "tiny-dense")
    return fake, tokenizer, VLLMBackend(spec, tokenizer, str(prepared_tiny["tiny-dense"]), str(adapter), entry), adapter


def test_vllm_backend_requests_and_stops_like_the_hf_engine(prepared_tiny, monkeypatch, study_config, tmp_path):
    answer = " so the answer is here.\nAnswer: C.\nMore text after the answer"
    fake, tokenizer, backend, adapter = vllm_backend(prepared_tiny, monkeypatch, study_config, tmp_path, None)
    fake.answer_ids = tokenizer.encode(answer, add_special_tokens=False)
    spec = ModelSpec("tiny-dense")
    requests, encoded_ = encoded(spec, tokenizer, items(3), "cot", max_new_tokens=96)
    generations = backend.run(requests)

    engine = fake.engine
    assert engine["tensor_parallel_size"] == 4 and engine["enable_prefix_caching"] and engine["enable_lora"]
    assert engine["load_format"] == "safetensors" and engine["logprobs_mode"] == "raw_logprobs"
    # the adapter's rank 12, reserved as the next rank vLLM allows
    assert engine["max_lora_rank"] == 16
    # the longest request: its prompt, its budget, the answer phrase and a label
    assert engine["max_model_len"] == max(
        len(r.input_ids) + 96 + len(r.forced_ids) + max(map(len, r.label_ids)) for r in encoded_
    )
    assert len(fake.calls) == 1  # every row stated its answer: no forced pass
    assert fake.calls[0]["prompts"] == [{"prompt_token_ids": r.input_ids} for r in encoded_]
    assert fake.calls[0]["sampling"] == {"temperature": 0.0, "max_tokens": 96, "skip_special_tokens": True}
    assert fake.calls[0]["lora"] == ("tiny-dense-ft", 1, str(adapter))
    first = generations[0]
    assert first.text == " so the answer is here.\nAnswer: C." and first.stop_reason == "answer"
    assert first.n_output_tokens == len(tokenizer.encode(first.text, add_special_tokens=False))


def test_vllm_backend_scores_labels_in_a_second_call(prepared_tiny, monkeypatch, study_config, tmp_path):
    """Direct requests get their labels scored after the prompt; a CoT row that ends
    without an answer gets them after continuation + answer phrase; both read the
    label tokens' prompt log-probabilities."""
    fake, tokenizer, backend, _ = vllm_backend(prepared_tiny, monkeypatch, study_config, tmp_path, None)
    continuation = tokenizer.encode(" no idea", add_special_tokens=False)
    fake.answer_ids = continuation + [tokenizer.eos_token_id]
    spec = ModelSpec("tiny-dense")
    requests, encoded_ = encoded(spec, tokenizer, items(2), "cot", max_new_tokens=96)
    results = backend.run(requests)
    assert [r.stop_reason for r in results] == ["eos", "eos"] and results[0].text == " no idea"
    labels = encoded_[0].label_ids
    assert all(len(label) == 2 for label in labels)  # the byte tokenizer: " " then the letter
    second = fake.calls[1]
    contexts = [r.input_ids + continuation + r.forced_ids for r in encoded_]
    assert second["prompts"] == [
        {"prompt_token_ids": context + label[:position]}
        for context in contexts
        for label in labels
        for position in (0, 1)
    ]
    assert [args["allowed_token_ids"] for args in second["sampling"]] == [
        [token] for _ in contexts for label in labels for token in label
    ]
    assert all(args["logprobs"] == 0 and args["max_tokens"] == 1 for args in second["sampling"])
    assert results[0].forced_logprobs == pytest.approx([-sum(label) / 1000 for label in labels])
    fake.calls.clear()
    requests, encoded_ = encoded(spec, tokenizer, items(2), "direct", max_new_tokens=4)
    results = backend.run(requests)
    assert fake.calls[1]["prompts"] == [
        {"prompt_token_ids": r.input_ids + label[:position]}
        for r in encoded_
        for label in labels
        for position in (0, 1)
    ]
    assert results[1].label_logprobs == pytest.approx([-sum(label) / 1000 for label in labels])


def test_single_token_choices_need_no_second_pass(prepared_tiny):
    _, tokenizer, model = loaded(prepared_tiny, "tiny-moe")
    letters = [tokenizer.encode(letter, add_special_tokens=False) for letter in "ABCD"]
    _, harness = encoded(ModelSpec("tiny-moe"), tokenizer, items(3), "direct", scoring="loglik", max_new_tokens=0)
    requests = [Encoded(r.input_ids + r.label_ids[0][:1], "", letters, True, None) for r in harness[0::2]]
    for result, request in zip(generate(model, tokenizer, requests, 2, progress=False), requests):
        assert result.label_logprobs == pytest.approx(
            full_sequence_scores(model, request.input_ids, request.label_ids), abs=1e-4
        )


def test_the_newest_token_screen_agrees_with_decoding_everything(prepared_tiny):
    from xlt.inference.stopping import answer_complete, stated_answer

    tokenizer = load_tokenizer(prepared_tiny["tiny-dense"], ModelSpec("tiny-dense"))
    for prefix, text in [
        ("Answer:", " B.\\nmore"),
        ("Let's think step by step.", " A is wrong.\nAnswer: C\n"),
        ("الإجابة:", " ب. ثم"),
        ("መልስ:", " D።"),
    ]:
        ids = tokenizer.encode(text.replace("\\n", "\n"), add_special_tokens=False)
        verdicts = [stated_answer(tokenizer, prefix, ids[:n]) for n in range(1, len(ids) + 1)]
        assert verdicts == [
            answer_complete(prefix + tokenizer.decode(ids[:n], skip_special_tokens=True))
            for n in range(1, len(ids) + 1)
        ]
        assert any(verdicts), text


def test_a_letter_is_not_closed_by_the_first_bytes_of_the_next_character(prepared_tiny):
    """Under a byte-level tokenizer a Hebrew letter is two tokens: after the first byte
    of ס in " בסתיו" (autumn) the text ends in U+FFFD, which must not read as the end of
    the label ב; the letter closed by a period still stops the row."""
    from xlt.inference.stopping import stated_answer

    tokenizer = load_tokenizer(prepared_tiny["tiny-dense"], ModelSpec("tiny-dense"))
    word, letter = (tokenizer.encode(text, add_special_tokens=False) for text in (" בסתיו.", " ב."))
    assert tokenizer.decode(word[:4]) == " ב\ufffd"  # space, the two bytes of ב, the first of ס
    assert not any(stated_answer(tokenizer, "התשובה:", word[:n]) for n in range(1, len(word) + 1))
    assert [stated_answer(tokenizer, "התשובה:", letter[:n]) for n in range(1, len(letter) + 1)] == [
        False,
        False,
        False,
        True,
    ]


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
@pytest.mark.parametrize("prompt", ["direct", "cot"])
def test_generation_is_batched_greedy_and_order_preserving(prepared_tiny, name, prompt):
    spec = ModelSpec(name)
    tokenizer = load_tokenizer(prepared_tiny[name], spec)
    model = load_model(prepared_tiny[name], spec)
    frame = items(5)
    requests = build_requests(frame, {"eng_Latn": TEMPLATE}, prompt, "generate", 6)
    chat = uses_chat_template(spec, tokenizer)
    encoded = [encode(tokenizer, request, chat) for request in requests]
    batched = generate(model, tokenizer, encoded, batch_size=4, progress=False)
    single = generate(model, tokenizer, encoded, batch_size=1, progress=False)
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


def test_the_shared_prefix_leaves_every_prompt_a_token_of_its_own():
    from xlt.inference.engine import common_prefix

    assert common_prefix([[1, 2, 3, 4], [1, 2, 9]]) == 2
    assert common_prefix([[1, 2, 3], [1, 2, 3, 4]]) == 2  # the shorter one keeps its last token
    assert common_prefix([[5, 6], [5, 6]]) == 1
    assert common_prefix([[7], [8, 9]]) == 0


def counting_tokens(model):
    """Wraps the model's forward to count the tokens it is fed (rows x columns)."""
    import functools

    fed = []
    forward = model.forward

    @functools.wraps(forward)  # the engine reads the cache argument's name from the signature
    def counted(*args, **kwargs):
        fed.append(kwargs["input_ids"].numel())
        return forward(*args, **kwargs)

    model.forward = counted
    return fed


def both_prompts(spec, tokenizer, frame, direct_tokens=6, cot_tokens=12):
    from xlt.inference.requests import encode_all

    requests = build_requests(frame, {"eng_Latn": TEMPLATE}, "direct", "generate", direct_tokens)
    requests += build_requests(frame, {"eng_Latn": TEMPLATE}, "cot", "generate", cot_tokens)
    # one request per item and prompt (the rotations' sharing: tests/test_cloze.py)
    requests = [request for request in requests if not request.rotation]
    return requests, encode_all(tokenizer, spec, requests)


@pytest.mark.parametrize("name", MODELS)
def test_an_items_prompts_share_their_prompt_pass_and_decode_as_each_alone(prepared_tiny, name):
    """The direct and CoT requests of five items in one run (their common token prefix
    prefilled once, then one decoding batch with two budgets) give the tokens, stop
    reasons and label log-probabilities (choice cell, forced answers) of each prompt's
    own run, while the model is fed fewer tokens."""
    from xlt.inference.engine import common_prefix

    spec, tokenizer, model = loaded(prepared_tiny, name)
    requests, encoded_ = both_prompts(spec, tokenizer, items(5))
    assert common_prefix([encoded_[0].input_ids, encoded_[5].input_ids]) > len(encoded_[0].input_ids) / 2
    fed = counting_tokens(model)
    together = generate(model, tokenizer, encoded_, 8, progress=False)
    shared_tokens = sum(fed)
    fed.clear()
    apart = generate(model, tokenizer, encoded_[:5], 8, progress=False) + generate(
        model, tokenizer, encoded_[5:], 8, progress=False
    )
    assert shared_tokens < sum(fed)
    assert [r.n_output_tokens for r in apart[5:]] != [0] * 5
    assert_same_generations(together, apart)
    frames = prediction_frames(requests, together, name, "base")
    assert set(frames) == {"direct", "choice", "cot"} and all(len(frame) == 5 for frame in frames.values())


def test_rows_sharing_a_stretch_after_the_items_prefix_get_it_as_one_branch(monkeypatch):
    from xlt.inference import engine

    monkeypatch.setattr(engine, "MIN_SHARED_BRANCH", 3)
    passage, options = [1, 2, 3], [4, 5, 6, 7]
    rows = [passage + options + [8], passage + options + [9, 9], passage + [6, 6, 6, 6], [20, 21]]
    units = engine.prompt_units(rows, ["a", "a", "a", None])
    assert units == [
        (
            passage,
            [
                engine.Branch(options, None, [engine.Branch([8], 0), engine.Branch([9, 9], 1)]),
                engine.Branch([6, 6, 6, 6], 2),
            ],
        ),
        ([20, 21], [engine.Branch([], 3)]),
    ]
    monkeypatch.setattr(engine, "MIN_SHARED_BRANCH", 5)  # four shared tokens are too few
    assert engine.prompt_units(rows[:3], ["a"] * 3)[0][1] == [
        engine.Branch(options + [8], 0),
        engine.Branch(options + [9, 9], 1),
        engine.Branch([6, 6, 6, 6], 2),
    ]


@pytest.mark.parametrize("name", MODELS)
def test_the_direct_and_cot_prompts_options_are_fed_once_and_decode_as_fed_twice(prepared_tiny, monkeypatch, name):
    """An item's direct and CoT prompts share their options after the prefix they share
    with the rotated prompts: fed once (an inner branch), then each prompt's
    instruction after it, the run gives the tokens, stops and scores of a run that
    feeds the options with each prompt, and feeds fewer tokens."""
    from xlt.inference import engine
    from xlt.inference.requests import encode_all

    spec, tokenizer, model = loaded(prepared_tiny, name)
    frame, templates = items(3), {"eng_Latn": TEMPLATE}
    requests = build_requests(frame, templates, "direct", "generate", 4)
    requests += build_requests(frame, templates, "cot", "generate", 6)
    encoded_ = encode_all(tokenizer, spec, requests)
    units = engine.prompt_units([e.input_ids for e in encoded_], [e.item for e in encoded_])
    assert all(any(branch.row is None and len(branch.children) == 2 for branch in unit[1]) for unit in units)
    fed = counting_tokens(model)
    branched = generate(model, tokenizer, encoded_, 3, progress=False)
    branched_tokens = sum(fed)
    fed.clear()
    monkeypatch.setattr(engine, "MIN_SHARED_BRANCH", 10**6)
    flat = generate(model, tokenizer, encoded_, 3, progress=False)
    assert branched_tokens < sum(fed)
    assert_same_generations(branched, flat)


def test_a_run_whose_other_prompt_changed_reads_this_prompts_results_back(prepared_tiny, tmp_path):
    """Each prompt's results are kept in its own shard with its own fingerprint: after
    the CoT budget changes, a rerun decodes the CoT requests only and returns the
    direct results it kept; a rerun with nothing changed decodes nothing."""
    from xlt.inference import engine
    from xlt.inference.hf import HFBackend

    spec, tokenizer, model = loaded(prepared_tiny, "tiny-dense")
    backend = HFBackend(spec, tokenizer, model, 4, {"model": "tiny-dense"})
    resume = {"direct": tmp_path / "direct" / ".predict.jsonl", "cot": tmp_path / "cot" / ".predict.jsonl"}
    for path in resume.values():
        path.parent.mkdir()
    requests, _ = both_prompts(spec, tokenizer, items(5))
    first = backend.run(requests, resume=resume)
    decoded_rows = []
    greedy = engine.greedy_batch

    def recording(model, rows, *args, **kwargs):
        decoded_rows.extend(rows)
        return greedy(model, rows, *args, **kwargs)

    engine.greedy_batch = recording
    try:
        longer, encoded_ = both_prompts(spec, tokenizer, items(5), cot_tokens=16)
        second = backend.run(longer, resume=resume)
        assert sorted(map(tuple, decoded_rows)) == sorted(tuple(r.input_ids) for r in encoded_[5:])
        assert second[:5] == first[:5]
        decoded_rows.clear()
        assert backend.run(longer, resume=resume) == second and decoded_rows == []
    finally:
        engine.greedy_batch = greedy


def test_vllm_backend_stops_where_the_engine_does_not_return_raw_logprobs(
    prepared_tiny, monkeypatch, study_config, tmp_path
):
    """Under processed_logprobs a forced label scores 0 whatever the model thinks: an
    engine that reports any mode but raw_logprobs stops before a request is sent."""
    fake, tokenizer, backend, _ = vllm_backend(
        prepared_tiny, monkeypatch, study_config, tmp_path, None, logprobs_mode="processed_logprobs"
    )
    requests, _ = encoded(ModelSpec("tiny-dense"), tokenizer, items(2), "direct", max_new_tokens=4)
    with pytest.raises(XltError, match="logprobs_mode 'processed_logprobs', not raw_logprobs"):
        backend.run(requests)
    assert fake.calls == []


def test_vllm_backend_resumes_from_its_shards(prepared_tiny, monkeypatch, study_config, tmp_path):
    """A job killed after its first wave: the next run reads that wave's results back
    from each prompt's shard and sends vLLM only the rest (waves of WAVE_ITEMS items)."""
    from xlt.inference import vllm as vllm_backend_module

    monkeypatch.setattr(vllm_backend_module, "WAVE_ITEMS", 2)
    fake, tokenizer, backend, _ = vllm_backend(prepared_tiny, monkeypatch, study_config, tmp_path, None)
    fake.answer_ids = tokenizer.encode(" Answer: B.", add_special_tokens=False)
    requests, encoded_ = both_prompts(ModelSpec("tiny-dense"), tokenizer, items(3))
    resume = {"direct": tmp_path / "direct.jsonl", "cot": tmp_path / "cot.jsonl"}
    first = backend.run(requests, resume=resume)
    sent = [
        prompt["prompt_token_ids"]
        for call in fake.calls
        if not isinstance(call["sampling"], list)
        for prompt in call["prompts"]
    ]
    assert len(sent) == len(requests)
    # as if killed after wave 0: the shards keep their header and first wave only
    for path in resume.values():
        path.write_text("".join(path.read_text().splitlines(keepends=True)[:2]))
    fake.calls.clear()
    again = backend.run(requests, resume=resume)
    assert again == first
    resent = [
        prompt["prompt_token_ids"]
        for call in fake.calls
        if not isinstance(call["sampling"], list)
        for prompt in call["prompts"]
    ]
    last_item = [index for index, request in enumerate(requests) if request.item_id == requests[-1].item_id]
    assert sorted(resent) == sorted(encoded_[index].input_ids for index in last_item)


def test_vllm_backend_decodes_each_prompt_in_its_own_call_for_the_prefix_cache(
    prepared_tiny, monkeypatch, study_config, tmp_path
):
    """Direct then CoT, each call with its prompt's budget: the CoT call finds what an
    item's prompts share already in vLLM's prefix cache."""
    fake, tokenizer, backend, _ = vllm_backend(prepared_tiny, monkeypatch, study_config, tmp_path, None)
    fake.answer_ids = tokenizer.encode(" Answer: B.", add_special_tokens=False)
    spec = ModelSpec("tiny-dense")
    requests, encoded_ = both_prompts(spec, tokenizer, items(3))
    backend.run(requests)
    assert fake.engine["enable_prefix_caching"]
    assert [call["sampling"]["max_tokens"] for call in fake.calls[:2]] == [6, 12]
    assert [call["prompts"] for call in fake.calls[:2]] == [
        [{"prompt_token_ids": r.input_ids} for r in part] for part in (encoded_[:3], encoded_[3:])
    ]


@pytest.mark.parametrize("name", [*MODELS, "tiny-sliding"])
def test_rows_of_one_item_share_a_prefix_past_the_sliding_window(prepared_tiny, name):
    """Three items of two prompts each, whose 30-token common prefix is longer than the
    sliding model's 16-token window and whose own tails differ in length: the shared
    prompt pass (tails joined across prefixes where the caches allow) decodes every row
    as model.generate does it alone, unpadded."""
    import torch

    model, pad_id = wave_model(prepared_tiny, name)
    generator = torch.Generator().manual_seed(2)
    rows_, items_, prompt_tokens = [], [], 0
    for item, prefix_length in enumerate((30, 34, 31)):
        prompt_tokens += prefix_length + 3 + 7
        prefix = torch.randint(5, 250, (prefix_length,), generator=generator).tolist()
        for tail_length in (3, 7):
            rows_.append(prefix + torch.randint(5, 250, (tail_length,), generator=generator).tolist())
            items_.append(f"item-{item}")
    fed = counting_tokens(model)
    with torch.inference_mode():
        wave = greedy_batch(model, rows_, [4, 9] * 3, pad_id, {-1}, lambda row, ids: False, items=items_)
        # On a CPU each prefix is a pass of its own; the tails of one length are then fed in one pass over the
        # joined caches (five passes), except past the sliding window, whose layer has dropped columns: there
        # each prefix's two tails go in passes of their own (nine). Then the three rows of budget 4 decode.
        passes = 9 if name == "tiny-sliding" else 5
        assert sum(fed[:passes]) == prompt_tokens < sum(len(ids) for ids in rows_) and fed[passes] == 3
        for row, ids in enumerate(rows_):
            alone = model.generate(
                torch.tensor([ids]), max_new_tokens=[4, 9][row % 2], do_sample=False, pad_token_id=pad_id
            )
            assert wave[row].tokens == alone[0, len(ids) :].tolist(), f"row {row}"


def test_done_rows_leave_the_batch_a_quarter_at_a_time(prepared_tiny, monkeypatch):
    """Eight rows answering one step after another: the batch (every layer's cache) is
    cut when done rows are a quarter of it, to 6, 4, 3, 2 and 1 rows, not once per row,
    and every row still gets the tokens model.generate gives it alone."""
    import torch

    from xlt.inference import kvcache

    model, pad_id = wave_model(prepared_tiny, "tiny-dense")
    layer_class = kvcache._buffered_layer_class()
    original = layer_class.batch_select_indices
    cuts = []

    def recording(self, indices):
        cuts.append(len(indices))
        original(self, indices)

    monkeypatch.setattr(layer_class, "batch_select_indices", recording)
    generator = torch.Generator().manual_seed(3)
    rows_ = [torch.randint(5, 250, (12,), generator=generator).tolist() for _ in range(8)]
    with torch.inference_mode():
        wave = greedy_batch(model, rows_, 12, pad_id, {-1}, lambda row, ids: len(ids) == row + 1)
        for row, ids in enumerate(rows_):
            alone = model.generate(torch.tensor([ids]), max_new_tokens=row + 1, do_sample=False, pad_token_id=pad_id)
            assert wave[row].tokens == alone[0, len(ids) :].tolist() and wave[row].stop_reason == "answer", f"row {row}"
    layers = model.config.num_hidden_layers
    assert cuts == [size for size in (6, 4, 3, 2, 1) for _ in range(layers)]


def test_vllm_backend_scores_cloze_options_token_by_token(prepared_tiny, monkeypatch, study_config, tmp_path):
    """The cloze requests generate nothing; each option's tokens are forced one by one
    after the cloze prompt and after the answer phrase alone, and summed."""
    fake, tokenizer, backend, _ = vllm_backend(prepared_tiny, monkeypatch, study_config, tmp_path, [])
    requests, encoded_ = encoded(
        ModelSpec("tiny-dense"), tokenizer, items(2), "cloze", scoring="continuations", max_new_tokens=0
    )
    results = backend.run(requests)
    assert len(fake.calls) == 1  # no generate call: the scoring call only
    asked = [call["prompt_token_ids"] for call in fake.calls[0]["prompts"]]
    assert asked == [
        r.input_ids + option[:position] for r in encoded_ for option in r.label_ids for position in range(len(option))
    ]
    for request, result in zip(encoded_, results):
        assert result.label_logprobs == pytest.approx([-sum(option) / 1000 for option in request.label_ids])
        assert result.label_tokens == [len(option) for option in request.label_ids] and result.n_output_tokens == 0
    assert prediction_frames(requests, results, "tiny-dense", "base")["cloze"]["parsed_choice"].notna().all()


def test_both_backends_implement_the_backend_interface_with_its_signature():
    """xlt.inference.backend.Backend: what stages.predict calls, the same on both."""
    import inspect

    from xlt.inference.backend import Backend
    from xlt.inference.hf import HFBackend
    from xlt.inference.vllm import VLLMBackend

    for backend in (HFBackend, VLLMBackend):
        assert issubclass(backend, Backend)
        assert inspect.signature(backend.run) == inspect.signature(Backend.run), backend.__name__
    with pytest.raises(TypeError):
        Backend()
