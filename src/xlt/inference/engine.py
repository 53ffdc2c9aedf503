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

The option labels' log-probabilities come from the same passes: after the prompt from
the prompt pass's last logits (the choice cell, and the harness's `loglik` scoring with
no token generated), and after a continuation that stops without an answer from its
cached context plus the answer phrase (the forced answer).
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from ..batching import max_padding_share, plan_batches, plan_waves
from ..extract import extract
from .forward import cache_keyword, copy_rows, extend, label_logprobs, prefill
from .requests import Encoded


@dataclass
class Generation:
    """What the engine returns for one request: the generated text (the stop token
    left out), its token count and why it stopped (answer, eos, budget), the label
    log-probabilities after the prompt (where asked) and after the forced answer
    phrase (a continuation that states no answer)."""

    text: str
    n_prompt_tokens: int
    n_output_tokens: int
    stop_reason: str
    label_logprobs: list[float] | None = None
    forced_logprobs: list[float] | None = None


@dataclass
class Decoded:
    """A row of a wave as decoding leaves it (token ids, the stop token included)."""

    tokens: list[int] = field(default_factory=list)
    stop_reason: str = "budget"
    label_logprobs: list[float] | None = None
    forced_logprobs: list[float] | None = None


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


@functools.cache
def _buffered_layer_class():
    """Defined on first use: transformers is imported lazily, as everywhere in xlt."""
    import torch
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
            if self.length + added > self.key_buffer.shape[2]:
                # a forced answer's phrase and labels after a continuation that used the
                # whole budget: the buffers grow once, by what is missing
                grow = (0, 0, 0, self.length + added - self.key_buffer.shape[2])
                self.key_buffer = torch.nn.functional.pad(self.key_buffer, grow)
                self.value_buffer = torch.nn.functional.pad(self.value_buffer, grow)
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


def decode(
    model,
    state: DecodeState,
    max_new_tokens: int,
    eos_ids: set[int],
    finished: Callable[[int, list[int]], bool],
    decoded: list[Decoded],
    forced: list[tuple[list[int], list[list[int]]] | None],
) -> None:
    """Greedy continuation of the state's rows into `decoded`. A row leaves the batch,
    cache included, when it emits an end-of-sequence token, when `finished(row,
    tokens)` says it has answered, or at the budget; a row that leaves without an
    answer and has a `forced` (answer phrase, labels) pair is given its phrase and its
    labels are scored from the cache before it goes."""
    import torch

    keyword = cache_keyword(model)
    active = torch.tensor(state.rows, device=model.device)
    cache, attention_mask, last_position = state.cache, state.attention_mask, state.last_position
    next_tokens = state.last_logits.argmax(-1)
    for step in range(max_new_tokens):
        keep, unanswered = [], []
        for slot, (row, token) in enumerate(zip(active.tolist(), next_tokens.tolist())):
            outcome = decoded[row]
            outcome.tokens.append(token)
            if token in eos_ids:
                outcome.stop_reason = "eos"
            elif finished(row, outcome.tokens):
                outcome.stop_reason = "answer"
            elif step == max_new_tokens - 1:
                outcome.stop_reason = "budget"
            else:
                keep.append(slot)
                continue
            if outcome.stop_reason != "answer" and forced[row] is not None:
                unanswered.append(slot)
        if unanswered:
            force_answers(model, unanswered, active, cache, attention_mask, last_position, decoded, forced)
        if not keep:
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


def force_answers(model, slots: list[int], active, cache, attention_mask, last_position, decoded: list[Decoded], forced) -> None:
    """The forced answer of rows that stopped without one: after the continuation
    (whose last token the cache has not seen yet, unless it is the end-of-sequence
    token, which is left out) the answer phrase, then the labels, all from a copy of
    the rows' cache. Rows whose feeds are as long go through the model together."""
    import torch

    groups: dict[int, list[tuple[int, list[int]]]] = {}
    for slot in slots:
        row = int(active[slot])
        outcome = decoded[row]
        phrase = forced[row][0]
        feed = phrase if outcome.stop_reason == "eos" else outcome.tokens[-1:] + phrase
        groups.setdefault(len(feed), []).append((slot, feed))
    for members in groups.values():
        chosen = torch.tensor([slot for slot, _ in members], device=model.device)
        rows = [int(active[slot]) for slot, _ in members]
        copied = copy_rows(cache, chosen)
        last_logits, mask, position = extend(model, [feed for _, feed in members], copied, attention_mask[chosen], last_position[chosen])
        scores = label_logprobs(model, last_logits, copied, mask, position, [forced[row][1] for row in rows])
        for row, row_scores in zip(rows, scores):
            decoded[row].forced_logprobs = row_scores


def greedy_batch(
    model,
    rows: list[list[int]],
    max_new_tokens: int,
    pad_id: int,
    eos_ids: set[int],
    finished: Callable[[int, list[int]], bool],
    prompt_labels: list[list[list[int]] | None] | None = None,
    forced: list[tuple[list[int], list[list[int]]] | None] | None = None,
) -> list[Decoded]:
    """Greedy continuation of each row of a wave. The prompts go through the model in
    chunks of similar length (little padding), then the whole wave is decoded as one
    batch. `prompt_labels`: per row, labels to score right after the prompt, from the
    prompt pass's own last logits (the first decoding step's); `forced`: per row, the
    (answer phrase, labels) of its forced answer (see `decode`)."""
    import torch

    chunks = plan_batches([len(ids) for ids in rows], len(rows), max_padding_share(model))
    decoded = [Decoded() for _ in rows]
    states = []
    for chunk in chunks:
        state = DecodeState(chunk, *prefill(model, [rows[i] for i in chunk], pad_id))
        scored = [i for i, row in enumerate(chunk) if prompt_labels and prompt_labels[row] is not None]
        if scored:
            picked = torch.tensor(scored, device=model.device)
            scores = label_logprobs(
                model,
                state.last_logits[picked],
                copy_rows(state.cache, picked),
                state.attention_mask[picked],
                state.last_position[picked],
                [prompt_labels[chunk[i]] for i in scored],
            )
            for i, row_scores in zip(scored, scores):
                decoded[chunk[i]].label_logprobs = row_scores
        states.append(state)
    if max_new_tokens == 0:
        return decoded
    merged = merge_states(states, max_new_tokens)
    for state in [merged] if merged is not None else states:
        decode(model, state, max_new_tokens, eos_ids, finished, decoded, forced or [None] * len(rows))
    return decoded


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


def generate(model, tokenizer, requests: list[Encoded], max_new_tokens: int, batch_size: int, shard=None, progress: bool = True, log=print) -> list[Generation]:
    """A `Generation` per request, in request order.

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
    results: dict[int, Generation] = {}
    fitting = batch_size
    bar = tqdm(total=len(requests), unit="item", file=_LineStream(sys.stderr), mininterval=15, disable=not progress, ascii=True)
    started = time.monotonic()
    with torch.inference_mode():
        for wave_number, indices in enumerate(plan):
            if wave_number in done:
                results.update({index: Generation(**fields) for index, fields in done[wave_number].items()})
                bar.update(len(indices))
                continue
            pending = [indices[start : start + fitting] for start in range(0, len(indices), fitting)][::-1]
            wave_results = {}
            while pending:
                part = pending.pop()
                prefixes = {i: requests[i].completion_prefix for i in part}
                try:
                    outcomes = greedy_batch(
                        model,
                        [requests[i].input_ids for i in part],
                        max_new_tokens,
                        tokenizer.pad_token_id,
                        eos_ids,
                        lambda row, ids: stated_answer(tokenizer, prefixes[part[row]], ids),  # noqa: B023 (called within this iteration)
                        [requests[i].label_ids if requests[i].scores_prompt else None for i in part],
                        [(requests[i].forced_ids, requests[i].label_ids) if requests[i].forced_ids else None for i in part],
                    )
                except Exception as error:
                    if not (_is_out_of_memory(error) and len(part) > 1):
                        raise
                    torch.cuda.empty_cache()
                    fitting = len(part) // 2
                    log(f"wave of {len(part)} ran out of GPU memory: retrying as {fitting} + {len(part) - fitting}")
                    pending.extend([part[fitting:], part[:fitting]])
                    continue
                for index, outcome in zip(part, outcomes):
                    ids = outcome.tokens[:-1] if outcome.stop_reason == "eos" else outcome.tokens
                    wave_results[index] = Generation(
                        tokenizer.decode(ids, skip_special_tokens=True),
                        len(requests[index].input_ids),
                        len(outcome.tokens),
                        outcome.stop_reason,
                        outcome.label_logprobs,
                        outcome.forced_logprobs,
                    )
            results.update(wave_results)
            if shard is not None:
                shard.append(wave_number, {index: asdict(generation) for index, generation in wave_results.items()})
            bar.update(len(indices))
    bar.close()
    log(f"generated for {len(requests)} items in {time.monotonic() - started:.1f}s ({len(done)} of {len(plan)} waves read back from an earlier run)")
    return [results[i] for i in range(len(requests))]
