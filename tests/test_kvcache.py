"""xlt/inference/kvcache.py, the one module that touches transformers' private cache
classes: the installed transformers still has what it relies on (a release that
changes it fails here, in one line naming the version and the class or attribute), and
its copied, joined and merged caches give the logits transformers' own DynamicCache
gives each row alone, on tiny random models."""

from __future__ import annotations

import pytest

from xlt.errors import XltError
from xlt.inference import kvcache
from xlt.inference.forward import prefill

TOLERANCE = 1e-5


def test_the_installed_transformers_has_what_kvcache_relies_on():
    kvcache.check_transformers_internals()


def removed_method(monkeypatch):
    from transformers.cache_utils import DynamicLayer

    monkeypatch.delattr(DynamicLayer, "batch_select_indices")
    return "DynamicLayer.batch_select_indices, which is gone"


def changed_signature(monkeypatch):
    from transformers.cache_utils import DynamicLayer

    monkeypatch.setattr(DynamicLayer, "update", lambda self, key_states, value_states, layer_idx: None)
    return (
        "DynamicLayer.update(self, key_states, value_states, args, kwargs), which now takes (self, "
        "key_states, value_states, layer_idx)"
    )


def removed_class(monkeypatch):
    from transformers import cache_utils

    monkeypatch.delattr(cache_utils, "DynamicSlidingWindowLayer")
    return "the class transformers.cache_utils.DynamicSlidingWindowLayer, which is gone"


def removed_attribute(monkeypatch):
    from transformers.cache_utils import DynamicSlidingWindowLayer

    original = DynamicSlidingWindowLayer.__init__

    def without_cumulative_length(self, *args, **kwargs):
        original(self, *args, **kwargs)
        del self.cumulative_length

    monkeypatch.setattr(DynamicSlidingWindowLayer, "__init__", without_cumulative_length)
    monkeypatch.setitem(kvcache.RELIED_ON_SIGNATURES, "DynamicSlidingWindowLayer.__init__", ["self", "args", "kwargs"])
    return "the DynamicSlidingWindowLayer attribute 'cumulative_length', which is gone"


@pytest.mark.parametrize("change", [removed_method, changed_signature, removed_class, removed_attribute])
def test_a_release_that_changes_the_internals_is_named_in_one_line(monkeypatch, change):
    from importlib.metadata import version

    expected = change(monkeypatch)
    with pytest.raises(XltError) as refused:
        kvcache.check_transformers_internals()
    message = str(refused.value)
    assert "\n" not in message
    assert (
        message == f"transformers {version('transformers')}: xlt/inference/kvcache.py relies on {expected}; adapt it "
        "to this release"
    )


def tiny_model(kind: str):
    """A random Llama, or a Gemma-3 text model whose first two layers have an 8-token
    sliding window (shorter than the prompts below)."""
    import torch
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig

    shape = dict(
        vocab_size=120,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    if kind == "llama":
        config = LlamaConfig(num_hidden_layers=2, **shape)
    else:
        config = Gemma3TextConfig(
            num_hidden_layers=3,
            head_dim=8,
            sliding_window=8,
            layer_types=["sliding_attention", "sliding_attention", "full_attention"],
            **shape,
        )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval()


def prompts():
    import torch

    generator = torch.Generator().manual_seed(2)
    return [torch.randint(5, 120, (length,), generator=generator).tolist() for length in (12, 11, 5, 3)]


FEEDS = [[7, 8, 9], [10, 11, 12], [13, 14, 15], [16, 17, 18]]  # each prompt's tokens fed one a step after it


def alone(model, ids: list[int], feeds: list[int]):
    """Each step's last logits for one unpadded row, through the cache the model makes
    itself (transformers' DynamicCache)."""
    import torch

    keyword = kvcache.cache_keyword(model)
    output = model(input_ids=torch.tensor([ids]), use_cache=True)
    cache, logits = getattr(output, keyword), [output.logits[0, -1]]
    for token in feeds:
        output = model(input_ids=torch.tensor([[token]]), use_cache=True, **{keyword: cache})
        logits.append(output.logits[0, -1])
    return torch.stack(logits)


def batched(model, rows: list[tuple[tuple, int]], cache, feeds: list[list[int]]):
    """Each step's last logits for rows (state, slot) of prefilled states over `cache`,
    their masks right-aligned to the widest."""
    import torch

    width = max(mask.shape[1] for (_, _, mask, _), _ in rows)
    mask = torch.cat(
        [torch.nn.functional.pad(mask[slot : slot + 1], (width - mask.shape[1], 0)) for (_, _, mask, _), slot in rows]
    )
    position = torch.cat([last[slot : slot + 1] for (_, _, _, last), slot in rows])
    logits = [torch.cat([first[slot : slot + 1] for (first, _, _, _), slot in rows])]
    for step in range(len(feeds[0])):
        mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=-1)
        position = position + 1
        tokens = torch.tensor([[row_feeds[step]] for row_feeds in feeds])
        output = model(
            input_ids=tokens,
            attention_mask=mask,
            position_ids=position[:, None],
            use_cache=True,
            **{kvcache.cache_keyword(model): cache},
        )
        logits.append(output.logits[:, -1])
    return torch.stack(logits, dim=1)


@pytest.mark.parametrize("kind", ["llama", "sliding"])
@pytest.mark.parametrize("new_tokens", [3, 1])  # 1: the buffers grow during decoding
def test_merged_caches_give_each_rows_dynamiccache_logits(kind, new_tokens):
    import torch

    model, rows = tiny_model(kind), prompts()
    with torch.inference_mode():
        chunks = [prefill(model, rows[:2], 0), prefill(model, rows[2:], 0)]
        width = max(state[2].shape[1] for state in chunks)
        merged = kvcache.merge_for_decoding([state[1] for state in chunks], width, new_tokens)
        assert merged is not None
        ours = batched(model, [(state, slot) for state in chunks for slot in range(2)], merged, FEEDS)
        for row, ids in enumerate(rows):
            torch.testing.assert_close(ours[row], alone(model, ids, FEEDS[row]), atol=TOLERANCE, rtol=0)


def test_joined_and_copied_rows_give_each_rows_dynamiccache_logits():
    """Rows of two prefilled chunks joined in another order (one twice), and a copy of
    some rows, decode as each row alone; the copied cache is left as it was."""
    import torch

    model, rows = tiny_model("llama"), prompts()
    with torch.inference_mode():
        chunks = [prefill(model, rows[:2], 0), prefill(model, rows[2:], 0)]
        picked = [(chunks[1], 1), (chunks[0], 0), (chunks[1], 0), (chunks[1], 1)]
        width = max(state[2].shape[1] for state in chunks)
        joined = kvcache.join_rows([(state[1], slot, state[2].shape[1]) for state, slot in picked], width)
        assert joined is not None
        order = [3, 0, 2, 3]
        ours = batched(model, picked, joined, [FEEDS[row] for row in order])
        for slot, row in enumerate(order):
            torch.testing.assert_close(ours[slot], alone(model, rows[row], FEEDS[row]), atol=TOLERANCE, rtol=0)

        before = [layer.keys.clone() for layer in chunks[0][1].layers]
        copied = kvcache.copy_rows(chunks[0][1], torch.tensor([1]))
        ours = batched(model, [(chunks[0], 1)], copied, [FEEDS[1]])
        torch.testing.assert_close(ours[0], alone(model, rows[1], FEEDS[1]), atol=TOLERANCE, rtol=0)
        assert all(torch.equal(layer.keys, kept) for layer, kept in zip(chunks[0][1].layers, before))


def test_a_sliding_layer_past_its_window_is_not_joined():
    import torch

    model, rows = tiny_model("sliding"), prompts()
    with torch.inference_mode():
        chunks = [prefill(model, rows[:2], 0), prefill(model, rows[2:], 0)]
        width = max(state[2].shape[1] for state in chunks)
        assert kvcache.join_rows([(state[1], 0, state[2].shape[1]) for state in chunks], width) is None
