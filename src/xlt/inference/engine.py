"""Batched greedy generation with a KV cache, stopping each row as soon as it has
stated an answer.

Prompts of every language are sorted by length (longest first) and cut into a fixed
plan of waves, so a resumed job recomputes exactly the waves an uninterrupted one would
(see shards.py). A wave's prompts go through the model in left-padded chunks of similar
length, then the chunks' caches are joined and the whole wave is decoded as one batch:
on a CPU, a decoding step costs about the same for 4 rows as for 64 (it reads every
weight once either way), so the fewer, wider steps the better. The decoding loop is our
own rather than `model.generate`: a row that has answered (or ended) is dropped from the
batch and its cache at once, instead of being padded along until the slowest row
finishes, which is where chain-of-thought decoding spends most of its time.
"""

from __future__ import annotations

import functools
import inspect
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from .. import paths
from ..extract import extract, extract_choice
from ..models import encode_prompt
from ..prompts import Template, options_of, render


@dataclass(frozen=True)
class Request:
    item_id: str
    lang: str
    input_ids: list[int]
    completion_prefix: str
    options: list[str]
    answer: int


def build_requests(items: pd.DataFrame, templates: dict[str, Template], prompt: str, tokenizer, chat: bool, chat_kwargs: dict | None = None) -> list[Request]:
    requests = []
    for item in items.to_dict("records"):
        rendered = render(item, templates[item["lang"]], prompt)
        requests.append(
            Request(
                item_id=item["item_id"],
                lang=item["lang"],
                input_ids=encode_prompt(tokenizer, rendered, chat, chat_kwargs),
                completion_prefix=rendered.completion_prefix,
                options=options_of(item),
                answer=int(item["correct_answer_num"]),
            )
        )
    return requests


def answer_complete(text: str) -> bool:
    """True once the text states an answer after an answer phrase and something (a
    period, a line end) has closed the label, so " B" is not cut from " Because". A
    token can end inside a character's UTF-8 bytes, which decode to U+FFFD until the
    next token completes them: that half-written character closes nothing (SmolLM2 wrote
    "התשובה: ב" and then the bytes of "בסתיו", autumn, not the letter ב)."""
    return bool(text) and not text[-1].isalnum() and text[-1] != "\ufffd" and extract(text).rule == "phrase"


def stated_answer(tokenizer, completion_prefix: str, ids: list[int]) -> bool:
    """`answer_complete` on the prefix and the generated tokens `ids`. Decoding the
    whole continuation at every step is quadratic in its length; the newest token
    alone shows whether the text can have closed a label (it must end in something
    other than a letter or digit), so only then is the whole text decoded."""
    newest = tokenizer.decode(ids[-1:], skip_special_tokens=True)
    if newest and newest[-1].isalnum():
        return False
    return answer_complete(completion_prefix + tokenizer.decode(ids, skip_special_tokens=True))


# A prefill chunk is closed before its padding would pass this share of its tokens: a
# padded position costs as much as a real one in the prompt pass, and prompts of one
# item differ by 6x in tokens across scripts (English vs Amharic under SmolLM2's
# tokenizer). On a GPU a wide pass is worth some padding; on a CPU it is not (16 mixed
# prompts of SmolLM2: 8.1 s one by one, 10.3 s in chunks padded up to 25%), so there
# only prompts of equal length share a pass.
GPU_MAX_PADDING_SHARE = 0.25
CPU_MAX_PADDING_SHARE = 0.0


def max_padding_share(model) -> float:
    return CPU_MAX_PADDING_SHARE if model.device.type == "cpu" else GPU_MAX_PADDING_SHARE


def longest_first(lengths: list[int]) -> list[int]:
    return sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))


def plan_waves(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Prompt indices in waves of `batch_size`, longest prompts first: the rows that
    are decoded together. Depends only on the lengths and the batch size, so a resumed
    job recomputes exactly the waves an uninterrupted one would (see shards.py)."""
    order = longest_first(lengths)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def plan_batches(lengths: list[int], batch_size: int, padding_limit: float = GPU_MAX_PADDING_SHARE) -> list[list[int]]:
    """Prompt indices in prefill chunks of at most `batch_size`, longest first, a chunk
    closed before a shorter prompt would take its padding past `padding_limit`."""
    plan: list[list[int]] = []
    for index in longest_first(lengths):
        batch = plan[-1] if plan else None
        if batch and len(batch) < batch_size:
            tokens = sum(lengths[i] for i in batch) + lengths[index]
            if 1 - tokens / (lengths[batch[0]] * (len(batch) + 1)) <= padding_limit:
                batch.append(index)
                continue
        plan.append([index])
    return plan


def _left_pad(rows: list[list[int]], pad_id: int, device):
    import torch

    width = max(len(ids) for ids in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, ids in enumerate(rows):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def cache_keyword(model) -> str:
    """The name of the KV-cache argument and output field: transformers 5.x renamed
    `past_key_values` to `cache`."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def prefill(model, rows: list[list[int]], pad_id: int):
    """One forward pass over left-padded rows keeping the logits of the last position
    only; returns (last logits, cache, attention mask, last positions)."""
    input_ids, attention_mask = _left_pad(rows, pad_id, model.device)
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    output = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    return output.logits[:, -1], getattr(output, cache_keyword(model)), attention_mask, positions[:, -1]


@functools.cache
def _buffered_layer_class():
    """Defined on first use: transformers is imported lazily, as everywhere in xlt."""
    from transformers.cache_utils import DynamicLayer

    class BufferedLayer(DynamicLayer):
        """A layer's keys and values in buffers sized once for the whole decoding:
        each step writes its position in place, where DynamicLayer concatenates,
        copying the layer's whole cache at every step."""

        def __init__(self, key_buffer, value_buffer, length: int, is_sliding: bool):
            super().__init__()
            self.key_buffer, self.value_buffer, self.length = key_buffer, value_buffer, length
            # keeps the model's mask choice per layer; the whole history is kept, and
            # the sliding-window mask hides what a sliding layer would have dropped
            self.is_sliding = is_sliding
            self.is_initialized = True
            self.device = key_buffer.device
            self._view()

        def _view(self) -> None:
            self.keys = self.key_buffer[:, :, : self.length]
            self.values = self.value_buffer[:, :, : self.length]

        def update(self, key_states, value_states, *args, **kwargs):
            added = key_states.shape[-2]
            self.key_buffer[:, :, self.length : self.length + added] = key_states
            self.value_buffer[:, :, self.length : self.length + added] = value_states
            self.length += added
            self._view()
            return self.keys, self.values

        def batch_select_indices(self, indices) -> None:
            self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
            self._view()

    return BufferedLayer


@dataclass
class DecodeState:
    """Rows being decoded: their numbers in the wave, the logits of their last
    position, the KV cache, the attention mask and the last position ids."""

    rows: list[int]
    last_logits: object
    cache: object
    attention_mask: object
    last_position: object


def merge_states(states: list[DecodeState], new_tokens: int) -> DecodeState | None:
    """The prefill chunks of a wave as one batch, so that decoding runs one forward
    pass per step for the whole wave, however many chunks the prompt pass needed.
    Each chunk's cache is right-aligned in buffers as wide as the widest chunk plus
    `new_tokens`; the left columns a chunk lacks are masked out. None when a layer is
    of a kind other than transformers' plain and sliding-window dynamic layers (linear
    attention, indexers): that wave's chunks are then decoded one after the other."""
    import torch
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

    layers = [state.cache.layers for state in states]
    if any(type(layer) not in (DynamicLayer, DynamicSlidingWindowLayer) or not layer.is_initialized for chunk in layers for layer in chunk):
        return None
    BufferedLayer = _buffered_layer_class()
    width = max(state.attention_mask.shape[1] for state in states)
    sizes = [len(state.rows) for state in states]
    merged_layers = []
    for parts in zip(*layers):
        buffers = []
        for kind in ("keys", "values"):
            first = getattr(parts[0], kind)
            buffer = first.new_zeros((sum(sizes), first.shape[1], width + new_tokens, first.shape[3]))
            start = 0
            for size, layer in zip(sizes, parts):
                stored = getattr(layer, kind)
                buffer[start : start + size, :, width - stored.shape[2] : width] = stored
                start += size
            buffers.append(buffer)
        merged_layers.append(BufferedLayer(*buffers, width, parts[0].is_sliding))
    cache = states[0].cache
    cache.layers = merged_layers
    attention_mask = torch.cat([torch.nn.functional.pad(state.attention_mask, (width - state.attention_mask.shape[1], 0)) for state in states])
    return DecodeState(
        rows=[row for state in states for row in state.rows],
        last_logits=torch.cat([state.last_logits for state in states]),
        cache=cache,
        attention_mask=attention_mask,
        last_position=torch.cat([state.last_position for state in states]),
    )


def decode(model, state: DecodeState, max_new_tokens: int, eos_ids: set[int], finished: Callable[[int, list[int]], bool], generated: list[list[int]]) -> None:
    """Greedy continuation of the state's rows into `generated` (token ids, the stop
    token included). A row leaves the batch, cache included, when it emits an
    end-of-sequence token or `finished(row, tokens)` says it has answered."""
    import torch

    keyword = cache_keyword(model)
    active = torch.tensor(state.rows, device=model.device)
    cache, attention_mask, last_position = state.cache, state.attention_mask, state.last_position
    next_tokens = state.last_logits.argmax(-1)
    for step in range(max_new_tokens):
        keep = []
        for slot, (row, token) in enumerate(zip(active.tolist(), next_tokens.tolist())):
            generated[row].append(token)
            if token not in eos_ids and not finished(row, generated[row]):
                keep.append(slot)
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(active):
            slots = torch.tensor(keep, device=model.device)
            cache.batch_select_indices(slots)
            active, attention_mask = active[slots], attention_mask[slots]
            next_tokens, last_position = next_tokens[slots], last_position[slots]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(active), 1))], dim=-1)
        last_position = last_position + 1
        output = model(
            input_ids=next_tokens[:, None],
            attention_mask=attention_mask,
            position_ids=last_position[:, None],
            use_cache=True,
            **{keyword: cache},
        )
        next_tokens = output.logits[:, -1].argmax(-1)


def greedy_batch(
    model, rows: list[list[int]], max_new_tokens: int, pad_id: int, eos_ids: set[int], finished: Callable[[int, list[int]], bool]
) -> list[list[int]]:
    """Greedy continuation of each row of a wave (token ids, the stop token included).
    The prompts go through the model in chunks of similar length (little padding),
    then the whole wave is decoded as one batch."""
    chunks = plan_batches([len(ids) for ids in rows], len(rows), max_padding_share(model))
    states = [DecodeState(chunk, *prefill(model, [rows[i] for i in chunk], pad_id)) for chunk in chunks]
    merged = merge_states(states, max_new_tokens)
    generated: list[list[int]] = [[] for _ in rows]
    for state in [merged] if merged is not None else states:
        decode(model, state, max_new_tokens, eos_ids, finished, generated)
    return generated


class _LineStream:
    """tqdm redraws its bar with carriage returns; in a log file each redraw should be
    a line of its own."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        self.stream.write(text.replace("\r", "\n") if not self.stream.isatty() else text)

    def flush(self) -> None:
        self.stream.flush()


def stop_token_ids(generation_config, tokenizer) -> set[int]:
    """End-of-sequence ids of the tokenizer and of the model's generation config (chat
    models often end a turn with a token of their own)."""
    configured = getattr(generation_config, "eos_token_id", None)
    ids = set(configured) if isinstance(configured, list) else {configured}
    ids.add(tokenizer.eos_token_id)
    ids.discard(None)
    return ids


def _is_out_of_memory(error: Exception) -> bool:
    import torch

    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


CPU_BATCH_SIZE = 64
GPU_BATCH_SIZE = 256


def resolve_batch_size(batch_size: int | str, model) -> int:
    """The planned batch size. "auto" plans large batches on a GPU (a batch that does
    not fit is split until it does, see `generate`) and, on a CPU, the size measured
    fastest for decoding on two cores (README, design notes)."""
    if batch_size != "auto":
        return int(batch_size)
    return GPU_BATCH_SIZE if model.device.type == "cuda" else CPU_BATCH_SIZE


def generate(
    model, tokenizer, requests: list[Request], max_new_tokens: int, batch_size: int, shard=None, progress: bool = True, log=print
) -> list[tuple[str, int]]:
    """(generated text, number of generated tokens) per request, in request order.

    `shard` (a shards.Shard) holds the waves finished by an earlier, interrupted run:
    they are read back instead of recomputed, and each new wave is appended to it. A
    wave that runs out of GPU memory is split in two and retried, and later waves are
    cut to the largest size that fitted.
    """
    import torch
    from tqdm import tqdm

    eos_ids = stop_token_ids(model.generation_config, tokenizer)
    plan = plan_waves([len(r.input_ids) for r in requests], batch_size)
    done = shard.completed() if shard is not None else {}
    results: dict[int, tuple[str, int]] = {}
    fitting = batch_size
    bar = tqdm(total=len(requests), unit="item", file=_LineStream(sys.stderr), mininterval=15, disable=not progress, ascii=True)
    started = time.monotonic()
    with torch.inference_mode():
        for wave_number, indices in enumerate(plan):
            if wave_number in done:
                results.update(done[wave_number])
                bar.update(len(indices))
                continue
            pending = [indices[start : start + fitting] for start in range(0, len(indices), fitting)][::-1]
            wave_results = {}
            while pending:
                part = pending.pop()
                prefixes = {i: requests[i].completion_prefix for i in part}
                try:
                    tokens = greedy_batch(
                        model,
                        [requests[i].input_ids for i in part],
                        max_new_tokens,
                        tokenizer.pad_token_id,
                        eos_ids,
                        lambda row, ids: stated_answer(tokenizer, prefixes[part[row]], ids),  # noqa: B023 (called within this iteration)
                    )
                except Exception as error:
                    if not (_is_out_of_memory(error) and len(part) > 1):
                        raise
                    torch.cuda.empty_cache()
                    fitting = len(part) // 2
                    log(f"wave of {len(part)} ran out of GPU memory: retrying as {fitting} + {len(part) - fitting}")
                    pending.extend([part[fitting:], part[:fitting]])
                    continue
                for index, ids in zip(part, tokens):
                    ends_with_eos = bool(ids) and ids[-1] in eos_ids
                    text = tokenizer.decode(ids[:-1] if ends_with_eos else ids, skip_special_tokens=True)
                    wave_results[index] = (text, len(ids))
            results.update(wave_results)
            if shard is not None:
                shard.append(wave_number, wave_results)
            bar.update(len(indices))
    bar.close()
    log(f"generated for {len(requests)} items in {time.monotonic() - started:.1f}s ({len(done)} of {len(plan)} waves read back from an earlier run)")
    return [results[i] for i in range(len(requests))]


def predictions_frame(requests: list[Request], generations: list[tuple[str, int]], model_name: str, variant: str, prompt: str) -> pd.DataFrame:
    """The predictions contract: one row per item, raw text kept, answer parsed."""
    rows = []
    for request, (text, n_output) in zip(requests, generations):
        raw = request.completion_prefix + text
        choice = extract_choice(raw, request.options)
        rows.append(
            {
                "item_id": request.item_id,
                "lang": request.lang,
                "model": model_name,
                "variant": variant,
                "prompt": prompt,
                "raw_output": raw,
                "parsed_choice": choice,
                "answer": request.answer,
                "correct": choice == request.answer,
                "n_prompt_tokens": len(request.input_ids),
                "n_output_tokens": n_output,
            }
        )
    return paths.predictions_frame(rows)
