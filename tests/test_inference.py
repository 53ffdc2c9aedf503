"""The inference engine on the tiny models: our decoding loop against transformers'
`generate`, resumable shards, loglik scoring against a plain full forward pass, and the
vLLM backend's requests (vLLM itself cannot run here: a stand-in module records what
it is asked)."""

from __future__ import annotations

import json
import sys
import types

import pytest
from belebele_rows import ENGLISH, TINY_MODELS, items

from xlt.inference import build_requests, generate
from xlt.inference.engine import DecodeState, greedy_batch, merge_states, plan_batches, plan_waves, resolve_batch_size, stop_token_ids
from xlt.inference.loglik import build_choice_requests, encode_pair, loglik_frame, score_choices
from xlt.inference.shards import Shard, partial_path, run_fingerprint
from xlt.models import ModelSpec, load_model, load_tokenizer, uses_chat_template

TEMPLATE, MODELS = ENGLISH, TINY_MODELS


def loaded(prepared_tiny, name):
    spec = ModelSpec(name)
    return spec, load_tokenizer(prepared_tiny[name], spec), load_model(prepared_tiny[name], spec, dtype="float32")


@pytest.mark.parametrize("name", MODELS)
def test_decoding_loop_matches_transformers_generate(prepared_tiny, name):
    import torch

    spec, tokenizer, model = loaded(prepared_tiny, name)
    requests = build_requests(items(4), {"eng_Latn": TEMPLATE}, "cot", tokenizer, uses_chat_template(spec, tokenizer))
    eos = stop_token_ids(model.generation_config, tokenizer)
    for request in requests:
        ours = greedy_batch(model, [request.input_ids], 20, tokenizer.pad_token_id, eos, lambda row, ids: False)[0]
        with torch.no_grad():
            theirs = model.generate(torch.tensor([request.input_ids]), max_new_tokens=20, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        assert ours == theirs[0, len(request.input_ids) :].tolist()


@pytest.mark.parametrize("name", MODELS)
def test_rows_leave_the_batch_without_changing_the_others(prepared_tiny, name):
    spec, tokenizer, model = loaded(prepared_tiny, name)
    requests = build_requests(items(5), {"eng_Latn": TEMPLATE}, "cot", tokenizer, uses_chat_template(spec, tokenizer))
    eos = stop_token_ids(model.generation_config, tokenizer)
    rows_ = [r.input_ids for r in requests]
    stop_early = {0: 3, 2: 5}  # rows 0 and 2 "answer" after 3 and 5 tokens
    batched = greedy_batch(model, rows_, 16, tokenizer.pad_token_id, eos, lambda row, ids: len(ids) == stop_early.get(row))
    for row, ids in enumerate(batched):
        alone = greedy_batch(model, [rows_[row]], 16, tokenizer.pad_token_id, eos, lambda _, got: len(got) == stop_early.get(row))[0]  # noqa: B023
        assert ids == alone
        if row in stop_early:
            assert len(ids) == stop_early[row]


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
            alone = model.generate(torch.tensor([ids]), max_new_tokens=stop_after.get(row, 12), do_sample=False, pad_token_id=pad_id)
            assert wave[row] == alone[0, len(ids) :].tolist(), f"row {row}"


def test_chunks_are_decoded_one_after_another_when_their_caches_cannot_be_joined(prepared_tiny, monkeypatch):
    """A cache layer of a kind the join does not know (linear attention, indexers) is
    not joined: its chunks are decoded in turn, to the same tokens."""
    import torch

    from xlt.inference import engine

    model, pad_id = wave_model(prepared_tiny, "tiny-dense")
    rows_ = [list(range(10, 10 + length)) for length in (30, 29, 8, 7)]
    with torch.inference_mode():
        joined = greedy_batch(model, rows_, 6, pad_id, {-1}, lambda row, ids: False)
        state = DecodeState([0], *engine.prefill(model, [rows_[0]], pad_id))
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
    path = tmp_path / ".predict.partial.jsonl"
    shard = Shard(path, "run-1")
    shard.append(0, {3: ("Answer: B.", 4), 1: ("ጥያቄ", 2)})
    shard.append(1, {0: ("x", 1)})
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"wave": 2, "results": [[2, "half')
    reopened = Shard(path, "run-1")
    assert reopened.completed() == {0: {3: ("Answer: B.", 4), 1: ("ጥያቄ", 2)}, 1: {0: ("x", 1)}}
    assert all(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    assert Shard(path, "run-2").completed() == {}
    assert run_fingerprint(a=1, b=[1, 2]) == run_fingerprint(b=[1, 2], a=1) != run_fingerprint(a=2, b=[1, 2])
    assert partial_path(["results/predictions/m/base/cot/eng_Latn.parquet"]).as_posix() == "results/predictions/m/base/cot/.predict.partial.jsonl"


def test_generate_reads_finished_waves_back_instead_of_recomputing(prepared_tiny, tmp_path):
    spec, tokenizer, model = loaded(prepared_tiny, "tiny-dense")
    requests = build_requests(items(4), {"eng_Latn": TEMPLATE}, "direct", tokenizer, True)
    plan = plan_waves([len(r.input_ids) for r in requests], 2)
    shard = Shard(tmp_path / "shard.jsonl", "run")
    shard.append(0, {index: (f"from the shard {index}", 1) for index in plan[0]})
    generations = generate(model, tokenizer, requests, 4, 2, shard=shard, progress=False, log=lambda *_: None)
    fresh = generate(model, tokenizer, requests, 4, 2, progress=False, log=lambda *_: None)
    for index in range(len(requests)):
        expected = (f"from the shard {index}", 1) if index in plan[0] else fresh[index]
        assert generations[index] == expected
    assert set(Shard(tmp_path / "shard.jsonl", "run").completed()) == {0, 1}


def test_context_and_continuation_split_as_the_harness_does(prepared_tiny):
    tokenizer = load_tokenizer(prepared_tiny["tiny-dense"], ModelSpec("tiny-dense"))
    context, continuation = encode_pair(tokenizer, "Answer: ", "B")
    assert tokenizer.decode(context) == "Answer:"
    assert tokenizer.decode(continuation) == " B"


def full_sequence_scores(model, request) -> list[float]:
    """The plain way: each choice appended to the context, one unpadded forward pass
    per choice, the choice's tokens summed."""
    import torch

    scores = []
    for ids in request.choice_ids:
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([request.context_ids + ids])).logits[0].float()
        logprobs = torch.log_softmax(logits[len(request.context_ids) - 1 : -1], dim=-1)
        scores.append(float(logprobs[torch.arange(len(ids)), torch.tensor(ids)].sum()))
    return scores


@pytest.mark.parametrize("name", MODELS)
def test_one_pass_over_the_shared_context_scores_like_four_full_passes(prepared_tiny, name):
    spec, tokenizer, model = loaded(prepared_tiny, name)
    requests = build_choice_requests(items(5), tokenizer)
    assert all(len(ids) == 2 for r in requests for ids in r.choice_ids)  # the byte tokenizer splits " A"
    fast = score_choices(model, tokenizer, requests, batch_size=3)
    slow = [full_sequence_scores(model, request) for request in requests]
    for fast_row, slow_row in zip(fast, slow):
        assert fast_row == pytest.approx(slow_row, abs=1e-4)
    frame = loglik_frame(requests, fast, name, "base")
    best = [max(range(4), key=row.__getitem__) + 1 for row in fast]
    assert frame["parsed_choice"].tolist() == best
    assert frame["raw_output"].tolist() == [f"Answer: {'ABCD'[b - 1]}" for b in best]


class _FakeVllm:
    """Records what the backend asks of vLLM and answers with fixed token ids."""

    def __init__(self, answer_ids):
        self.answer_ids = answer_ids
        self.calls = {}
        fake = self

        class LLM:
            def __init__(self, **kwargs):
                fake.calls["engine"] = kwargs

            def generate(self, prompts, sampling, lora_request=None):
                fake.calls.update(prompts=prompts, sampling=sampling, lora=lora_request)
                return [types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=fake.answer_ids)]) for _ in prompts]

        self.module = types.SimpleNamespace(LLM=LLM, SamplingParams=lambda **kwargs: kwargs)
        self.lora_module = types.SimpleNamespace(LoRARequest=lambda name, number, path: (name, number, path))


def test_vllm_backend_requests_and_stops_like_the_hf_engine(prepared_tiny, monkeypatch, study_config, tmp_path):
    from xlt.inference.vllm import generate_vllm

    spec, tokenizer, _ = loaded(prepared_tiny, "tiny-dense")
    requests = build_requests(items(3), {"eng_Latn": TEMPLATE}, "cot", tokenizer, True)
    answer_ids = tokenizer.encode(" so the answer is here.\nAnswer: C.\nMore text after the answer", add_special_tokens=False)
    fake = _FakeVllm(answer_ids)
    monkeypatch.setitem(sys.modules, "vllm", fake.module)
    monkeypatch.setitem(sys.modules, "vllm.lora", types.SimpleNamespace(request=fake.lora_module))
    monkeypatch.setitem(sys.modules, "vllm.lora.request", fake.lora_module)
    entry = json.loads(json.dumps(study_config["models"]["smollm2-135m"]))
    entry["inference"].update(backend="vllm", tensor_parallel_size=4)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 12}))
    generations = generate_vllm(spec, str(prepared_tiny["tiny-dense"]), str(adapter), entry, tokenizer, requests, 96)

    engine = fake.calls["engine"]
    assert engine["tensor_parallel_size"] == 4 and engine["enable_prefix_caching"] and engine["enable_lora"]
    assert engine["load_format"] == "safetensors"
    assert engine["max_lora_rank"] == 12
    assert fake.calls["prompts"] == [{"prompt_token_ids": r.input_ids} for r in requests]
    assert fake.calls["sampling"] == {"temperature": 0.0, "max_tokens": 96, "skip_special_tokens": True}
    assert fake.calls["lora"] == ("tiny-dense-ft", 1, str(adapter))
    text, count = generations[0]
    assert text == " so the answer is here.\nAnswer: C."
    assert count == len(tokenizer.encode(text, add_special_tokens=False))


def test_single_token_choices_need_no_second_pass(prepared_tiny):
    from xlt.inference.loglik import ChoiceRequest

    _, tokenizer, model = loaded(prepared_tiny, "tiny-moe")
    letters = [tokenizer.encode(letter, add_special_tokens=False) for letter in "ABCD"]
    requests = [ChoiceRequest(r.item_id, r.lang, r.context_ids + r.choice_ids[0][:1], letters, r.answer) for r in build_choice_requests(items(3), tokenizer)]
    for fast_row, request in zip(score_choices(model, tokenizer, requests, batch_size=2), requests):
        assert fast_row == pytest.approx(full_sequence_scores(model, request), abs=1e-4)


def test_the_newest_token_screen_agrees_with_decoding_everything(prepared_tiny):
    from xlt.inference.engine import answer_complete, stated_answer

    tokenizer = load_tokenizer(prepared_tiny["tiny-dense"], ModelSpec("tiny-dense"))
    for prefix, text in [("Answer:", " B.\\nmore"), ("Let's think step by step.", " A is wrong.\nAnswer: C\n"), ("الإجابة:", " ب. ثم"), ("መልስ:", " D።")]:
        ids = tokenizer.encode(text.replace("\\n", "\n"), add_special_tokens=False)
        verdicts = [stated_answer(tokenizer, prefix, ids[:n]) for n in range(1, len(ids) + 1)]
        assert verdicts == [answer_complete(prefix + tokenizer.decode(ids[:n], skip_special_tokens=True)) for n in range(1, len(ids) + 1)]
        assert any(verdicts), text


def test_a_letter_is_not_closed_by_the_first_bytes_of_the_next_character(prepared_tiny):
    """Under a byte-level tokenizer a Hebrew letter is two tokens: after the first byte
    of ס in " בסתיו" (autumn) the text ends in U+FFFD, which must not read as the end of
    the label ב; the letter closed by a period still stops the row."""
    from xlt.inference.engine import stated_answer

    tokenizer = load_tokenizer(prepared_tiny["tiny-dense"], ModelSpec("tiny-dense"))
    word, letter = (tokenizer.encode(text, add_special_tokens=False) for text in (" בסתיו.", " ב."))
    assert tokenizer.decode(word[:4]) == " ב\ufffd"  # space, the two bytes of ב, the first of ס
    assert not any(stated_answer(tokenizer, "התשובה:", word[:n]) for n in range(1, len(word) + 1))
    assert [stated_answer(tokenizer, "התשובה:", letter[:n]) for n in range(1, len(letter) + 1)] == [False, False, False, True]
