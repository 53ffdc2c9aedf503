"""Batched greedy generation with a KV cache, stopping each row as soon as it has
stated an answer.

Prompts of every language are sorted by length (longest first) and cut into a fixed
plan of batches, so a batch pads little and a resumed job recomputes exactly the
batches an uninterrupted one would (see shards.py). Batches are left-padded, so every
row continues from its last token. The decoding loop is our own rather than
`model.generate`: a row that has answered (or ended) is dropped from the batch and its
cache at once, instead of being padded along until the slowest row finishes, which is
where chain-of-thought decoding spends most of its time.
"""

from __future__ import annotations

import inspect
import sys
import time
from dataclasses import dataclass
from typing import Callable

import pandas as pd

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
    period, a line end) has closed the label, so " B" is not cut from " Because"."""
    return bool(text) and not text[-1].isalnum() and extract(text).rule == "phrase"


def stated_answer(tokenizer, completion_prefix: str, ids: list[int]) -> bool:
    """`answer_complete` on the prefix and the generated tokens `ids`. Decoding the
    whole continuation at every step is quadratic in its length; the newest token
    alone shows whether the text can have closed a label (it must end in something
    other than a letter or digit), so only then is the whole text decoded."""
    newest = tokenizer.decode(ids[-1:], skip_special_tokens=True)
    if newest and newest[-1].isalnum():
        return False
    return answer_complete(completion_prefix + tokenizer.decode(ids, skip_special_tokens=True))


# A batch is closed before its padding would pass this share of its tokens: a padded
# position costs as much as a real one in the prefill, and prompts of one item differ
# by 6x in tokens across scripts (English vs Amharic under SmolLM2's tokenizer).
MAX_PADDING_SHARE = 0.25


def plan_batches(requests: list[Request], batch_size: int) -> list[list[int]]:
    """Request indices in batches of at most `batch_size`, longest prompts first, a
    batch closed early where a shorter prompt would make it mostly padding. Depends
    only on the requests and the batch size, so a rerun plans the same batches."""
    order = sorted(range(len(requests)), key=lambda i: (-len(requests[i].input_ids), i))
    plan: list[list[int]] = []
    for index in order:
        batch = plan[-1] if plan else None
        if batch and len(batch) < batch_size:
            width = len(requests[batch[0]].input_ids)
            tokens = sum(len(requests[i].input_ids) for i in batch) + len(requests[index].input_ids)
            if 1 - tokens / (width * (len(batch) + 1)) <= MAX_PADDING_SHARE:
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
        input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids):] = 1
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


def greedy_batch(model, rows: list[list[int]], max_new_tokens: int, pad_id: int, eos_ids: set[int], finished: Callable[[int, list[int]], bool]) -> list[list[int]]:
    """Greedy continuation of each row (token ids, the stop token included). A row
    leaves the batch, cache included, when it emits an end-of-sequence token or
    `finished(row, tokens)` says it has answered."""
    import torch

    keyword = cache_keyword(model)
    last_logits, cache, attention_mask, last_position = prefill(model, rows, pad_id)
    active = torch.arange(len(rows), device=model.device)
    generated: list[list[int]] = [[] for _ in rows]
    next_tokens = last_logits.argmax(-1)
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


CPU_BATCH_SIZE = 32
GPU_BATCH_SIZE = 256


def resolve_batch_size(batch_size: int | str, model) -> int:
    """The planned batch size. "auto" plans large batches on a GPU (a batch that does
    not fit is split until it does, see `generate`) and, on a CPU, the size measured
    fastest for decoding on two cores (README, design notes)."""
    if batch_size != "auto":
        return int(batch_size)
    return GPU_BATCH_SIZE if model.device.type == "cuda" else CPU_BATCH_SIZE


def generate(model, tokenizer, requests: list[Request], max_new_tokens: int, batch_size: int, shard=None, progress: bool = True, log=print) -> list[tuple[str, int]]:
    """(generated text, number of generated tokens) per request, in request order.

    `shard` (a shards.Shard) holds the batches finished by an earlier, interrupted run:
    they are read back instead of recomputed, and each new batch is appended to it. A
    batch that runs out of GPU memory is split in two and retried, and later batches
    are cut to the largest size that fitted.
    """
    import torch
    from tqdm import tqdm

    eos_ids = stop_token_ids(model.generation_config, tokenizer)
    plan = plan_batches(requests, batch_size)
    done = shard.completed() if shard is not None else {}
    results: dict[int, tuple[str, int]] = {}
    fitting = batch_size
    bar = tqdm(total=len(requests), unit="item", file=_LineStream(sys.stderr), mininterval=15, disable=not progress, ascii=True)
    started = time.monotonic()
    with torch.inference_mode():
        for batch_number, indices in enumerate(plan):
            if batch_number in done:
                results.update(done[batch_number])
                bar.update(len(indices))
                continue
            pending = [indices[start:start + fitting] for start in range(0, len(indices), fitting)][::-1]
            batch_results = {}
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
                        lambda row, ids: stated_answer(tokenizer, prefixes[part[row]], ids),
                    )
                except Exception as error:
                    if not (_is_out_of_memory(error) and len(part) > 1):
                        raise
                    torch.cuda.empty_cache()
                    fitting = len(part) // 2
                    log(f"batch of {len(part)} ran out of GPU memory: retrying as {fitting} + {len(part) - fitting}")
                    pending.extend([part[fitting:], part[:fitting]])
                    continue
                for index, ids in zip(part, tokens):
                    ends_with_eos = bool(ids) and ids[-1] in eos_ids
                    text = tokenizer.decode(ids[:-1] if ends_with_eos else ids, skip_special_tokens=True)
                    batch_results[index] = (text, len(ids))
            results.update(batch_results)
            if shard is not None:
                shard.append(batch_number, batch_results)
            bar.update(len(indices))
    bar.close()
    log(f"generated for {len(requests)} items in {time.monotonic() - started:.1f}s ({len(done)} of {len(plan)} batches read back from an earlier run)")
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
    frame = pd.DataFrame(rows)
    frame["parsed_choice"] = frame["parsed_choice"].astype("Int64")
    return frame
