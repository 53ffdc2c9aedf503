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

An item's prompts share most of their tokens: the direct and chain-of-thought prompts
the chat header, passage, question and options, all but the last instruction line and
the completion prefix; the choice cell's rotated prompts and the cloze prompt the header,
passage and question. Their prompt pass is shared at the token level (`prompt_states`):
the longest common token prefix of the item's requests goes through the model once, the
options the direct and CoT prompts share once after a copy of that cache, and each
request's own remaining tokens after a copy of what it shares, so a tokenizer merge at a
boundary cannot change what a prompt is. Each prompt's rows of the wave then decode as
one batch, to that prompt's token budget.

The option labels' log-probabilities come from the same passes: after the prompt from
the prompt pass's last logits (the choice cell, and the harness's `loglik` scoring with
no token generated), and after a continuation that stops without an answer from its
cached context plus the answer phrase (the forced answer).

What copies, joins and merges the caches is in kvcache.py, the one module that touches
transformers' private cache classes.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..batching import max_padding_share, plan_batches, plan_waves
from . import kvcache
from .forward import extend, label_logprobs, prefill
from .requests import Encoded, Generation
from .stopping import stated_answer, stop_token_ids

if TYPE_CHECKING:
    import torch

    from .kvcache import Cache

logger = logging.getLogger(__name__)


@dataclass
class Decoded:
    """A row of a wave as decoding leaves it (token ids, the stop token included)."""

    tokens: list[int] = field(default_factory=list)
    stop_reason: str = "budget"
    label_logprobs: list[float] | None = None
    forced_logprobs: list[float] | None = None


class NotANumber(Exception):
    """The model's scores at a decoding step are NaN for these rows (of a wave inside
    `decode`, requests once `generate` re-raises it): a greedy step would take a NaN
    for the likeliest token."""

    def __init__(self, rows: list[int]):
        super().__init__(f"NaN scores for rows {rows}")
        self.rows = rows


def greedy_tokens(logits, rows: list[int]):
    """The likeliest token of each row (last axis), never a NaN's: torch's argmax takes
    a NaN for the largest value, so a row whose winner is NaN stops with NotANumber.
    `rows`: the wave's row numbers of the logits' rows."""
    import torch

    tokens = logits.argmax(-1)
    lost = torch.isnan(logits.gather(-1, tokens[:, None])[:, 0])
    if bool(lost.any()):
        raise NotANumber([rows[slot] for slot in lost.nonzero().flatten().tolist()])
    return tokens


@dataclass
class DecodeState:
    """Rows being decoded: their numbers in the wave, the logits of their last
    position, the KV cache, the attention mask and the last position ids."""

    rows: list[int]
    last_logits: torch.Tensor
    cache: Cache
    attention_mask: torch.Tensor
    last_position: torch.Tensor


def merge_states(states: list[DecodeState], new_tokens: int) -> DecodeState | None:
    """The prefill chunks of a wave as one batch, so that decoding runs one forward
    pass per step for the whole wave, however many chunks the prompt pass needed.
    Each chunk's cache is right-aligned in buffers as wide as the widest chunk plus
    `new_tokens`; the left columns a chunk lacks are masked out. None when a layer is
    of a kind other than transformers' plain and sliding-window dynamic layers (linear
    attention, indexers): that wave's chunks are then decoded one after the other."""
    import torch

    width = max(state.attention_mask.shape[1] for state in states)
    cache = kvcache.merge_for_decoding([state.cache for state in states], width, new_tokens)
    if cache is None:
        return None
    attention_mask = torch.cat(
        [torch.nn.functional.pad(state.attention_mask, (width - state.attention_mask.shape[1], 0)) for state in states]
    )
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
    budgets: list[int],
    eos_ids: set[int],
    finished: Callable[[int, list[int]], bool],
    decoded: list[Decoded],
    forced: list[tuple[list[int], list[list[int]]] | None],
) -> None:
    """Greedy continuation of the state's rows into `decoded`. A row is done when it
    emits an end-of-sequence token, when `finished(row, tokens)` says it has answered,
    or at its budget (`budgets[row]` tokens); a row done without an answer that has a
    `forced` (answer phrase, labels) pair is given its phrase and its labels are scored
    from the cache at once. Done rows leave the batch, cache included, once they are a
    quarter of it: dropping rows copies every layer's cache, which done whenever one
    row finishes copies it once per row, while a done row carried a few steps more
    costs only its share of those steps."""
    import torch

    keyword = kvcache.cache_keyword(model)
    active = torch.tensor(state.rows, device=model.device)
    cache, attention_mask, last_position = state.cache, state.attention_mask, state.last_position
    next_tokens = greedy_tokens(state.last_logits, state.rows)
    done: set[int] = set()
    for step in range(max(budgets[row] for row in state.rows)):
        keep, unanswered = [], []
        for slot, (row, token) in enumerate(zip(active.tolist(), next_tokens.tolist())):
            if slot in done:
                continue
            outcome = decoded[row]
            outcome.tokens.append(token)
            if token in eos_ids:
                outcome.stop_reason = "eos"
            elif finished(row, outcome.tokens):
                outcome.stop_reason = "answer"
            elif step == budgets[row] - 1:
                outcome.stop_reason = "budget"
            else:
                keep.append(slot)
                continue
            done.add(slot)
            if outcome.stop_reason != "answer" and forced[row] is not None:
                unanswered.append(slot)
        if unanswered:
            force_answers(model, unanswered, active, cache, attention_mask, last_position, decoded, forced)
        if not keep:
            break
        if 4 * len(done) >= len(active):
            slots = torch.tensor(keep, device=model.device)
            cache.batch_select_indices(slots)
            active, attention_mask = active[slots], attention_mask[slots]
            next_tokens, last_position = next_tokens[slots], last_position[slots]
            done = set()
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(active), 1))], dim=-1)
        last_position = last_position + 1
        output = model(
            input_ids=next_tokens[:, None],
            attention_mask=attention_mask,
            position_ids=last_position[:, None],
            use_cache=True,
            **{keyword: cache},
        )
        next_tokens = greedy_tokens(output.logits[:, -1], active.tolist())


def force_answers(
    model, slots: list[int], active, cache, attention_mask, last_position, decoded: list[Decoded], forced
) -> None:
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
        copied = kvcache.copy_rows(cache, chosen)
        last_logits, mask, position = extend(
            model, [feed for _, feed in members], copied, attention_mask[chosen], last_position[chosen]
        )
        scores = label_logprobs(model, last_logits, copied, mask, position, [forced[row][1] for row in rows])
        for row, row_scores in zip(rows, scores):
            decoded[row].forced_logprobs = row_scores


def common_prefix(rows: list[list[int]]) -> int:
    """How many leading tokens all rows share, leaving every row at least one token of
    its own (the prompt pass must end on each row's own last token)."""
    shared = min(len(ids) for ids in rows) - 1
    for position in range(shared):
        if any(ids[position] != rows[0][position] for ids in rows[1:]):
            return position
    return max(shared, 0)


def take(state: DecodeState, slots: list[int]) -> DecodeState:
    """A state of some of `state`'s rows (`slots`: their places in it, a place may
    repeat) over a copy of their cache, which later passes extend without touching
    `state`."""
    import torch

    picked = torch.tensor(slots, device=state.last_logits.device)
    return DecodeState(
        [state.rows[slot] for slot in slots],
        state.last_logits[picked],
        kvcache.copy_rows(state.cache, picked),
        state.attention_mask[picked],
        state.last_position[picked],
    )


def select(state: DecodeState, slots: list[int]) -> DecodeState:
    """`take`, or the state itself where the slots are all its rows in order."""
    return state if slots == list(range(len(state.rows))) else take(state, slots)


# How many context tokens (summed over rows) one pass over the rows' own remaining tokens
# may copy: an item's rotated prompts and cloze prompt are four more rows after its
# prefix, and a wave's rows of one length in one pass would hold all their caches at once.
FEED_PASS_CONTEXT_TOKENS = 32768
# How many tokens two of an item's rows must share after the item's common prefix for
# that stretch to be fed once (the direct and CoT prompts' options: their rotations and
# the cloze prompt share only the passage and question): a shorter stretch saves less
# than the pass and the cache copies it adds.
MIN_SHARED_BRANCH = 16


@dataclass
class Branch:
    """Tokens fed after a parent's cache (a prefix, or another branch): the row they
    end, or (`row` None) the branches fed after them."""

    tokens: list[int]
    row: int | None = None
    children: list[Branch] = field(default_factory=list)


def shared_length(first: list[int], second: list[int]) -> int:
    return next((i for i, (a, b) in enumerate(zip(first, second)) if a != b), min(len(first), len(second)))


def branches(rows: dict[int, list[int]]) -> list[Branch]:
    """The rows' remaining tokens (row -> tokens) as a tree: rows whose tokens share at
    least MIN_SHARED_BRANCH leading tokens are fed those once, as an inner branch (their
    `common_prefix`, which leaves each row a token of its own), then their own tokens
    after it; every other row is a branch of its own."""
    order = sorted(rows, key=lambda row: rows[row])
    clusters = [[order[0]]]
    for previous, row in zip(order, order[1:]):
        if shared_length(rows[previous], rows[row]) >= MIN_SHARED_BRANCH:
            clusters[-1].append(row)
        else:
            clusters.append([row])
    tree: list[Branch] = []
    for cluster in clusters:
        shared = common_prefix([rows[row] for row in cluster]) if len(cluster) > 1 else 0
        if shared < MIN_SHARED_BRANCH:
            tree.extend(Branch(rows[row], row) for row in cluster)
        else:
            tree.append(Branch(rows[cluster[0]][:shared], None, branches({row: rows[row][shared:] for row in cluster})))
    return tree


def prompt_units(rows: list[list[int]], items: list | None) -> list[tuple[list[int], list[Branch]]]:
    """The prompt pass's units: the tokens of one prefill row, and the branches fed
    after it. Rows of one item (`items[row]`, None for a row alone) share a unit: their
    longest common token prefix, then their remaining tokens (`branches`); a row alone
    is a unit whose one branch (no tokens) ends it."""
    members: dict[object, list[int]] = {}
    for row, item in enumerate(items or [None] * len(rows)):
        members.setdefault(("row", row) if item is None else ("item", item), []).append(row)
    units: list[tuple[list[int], list[Branch]]] = []
    for group in members.values():
        shared = common_prefix([rows[row] for row in group]) if len(group) > 1 else 0
        if shared == 0:
            units.extend((rows[row], [Branch([], row)]) for row in group)
        else:
            units.append((rows[group[0]][:shared], branches({row: rows[row][shared:] for row in group})))
    return units


def prompt_states(model, rows: list[list[int]], pad_id: int, items: list | None = None) -> Iterator[DecodeState]:
    """The prompt pass over `rows`, as decode states that hold every row once, each
    yielded as soon as it is computed, so that a state whose rows only score labels is
    let go before the next is made. Rows of one item share the pass over their common
    tokens (`prompt_units`): the prefix goes through the model with the other items'
    (in left-padded chunks of similar length), then each branch's tokens are fed after a
    copy of its parent's cache, level by level, branches with as many tokens together,
    as many to a pass as FEED_PASS_CONTEXT_TOKENS allows."""
    units = prompt_units(rows, items)
    # (parent state, its slot, branch): fed together across chunks, level by level
    pending: list[tuple[DecodeState, int, Branch]] = []
    for chunk in plan_batches([len(ids) for ids, _ in units], len(units), max_padding_share(model)):
        prefilled = DecodeState(list(chunk), *prefill(model, [units[unit][0] for unit in chunk], pad_id))
        whole = [slot for slot, unit in enumerate(chunk) if not units[unit][1][0].tokens]
        if whole:
            state = select(prefilled, whole)
            yield replace(state, rows=[row for slot in whole if (row := units[chunk[slot]][1][0].row) is not None])
        pending.extend(
            (prefilled, slot, branch) for slot, unit in enumerate(chunk) for branch in units[unit][1] if branch.tokens
        )
    while pending:
        fed_after: list[tuple[DecodeState, int, Branch]] = []
        for state in branch_states(model, pending):
            if state.rows and state.rows[0] >= 0:
                yield state
            else:  # inner branches: parents of the next level's
                fed_after.extend(
                    (state, slot, child)
                    for slot, row in enumerate(state.rows)
                    for child in pending[-row - 1][2].children
                )
        pending = fed_after


def branch_states(model, pending: list[tuple[DecodeState, int, Branch]]) -> Iterator[DecodeState]:
    """Each pending branch's tokens fed after a copy of its parent's row, branches of one
    length and kind (ending a row, or inner) together. A state of rows is yielded with
    the rows' numbers; a state of inner branches with -1 - (the branch's index in
    `pending`)."""
    by_length: dict[tuple[int, bool], list[int]] = {}
    for index, (_, _, branch) in enumerate(pending):
        by_length.setdefault((len(branch.tokens), branch.row is None), []).append(index)
    slices: list[list[int]] = []
    for fed in by_length.values():
        widest = max(pending[index][0].attention_mask.shape[1] for index in fed)
        step = max(1, FEED_PASS_CONTEXT_TOKENS // widest)
        slices.extend(fed[start : start + step] for start in range(0, len(fed), step))
    for fed in slices:
        joined = join_rows([(pending[index][0], pending[index][1]) for index in fed])
        if joined is not None:
            parts = [(joined, fed)]
        else:  # a cache that cannot be joined: each parent's rows are fed in a pass of their own
            by_parent: dict[int, list[int]] = {}
            for index in fed:
                by_parent.setdefault(id(pending[index][0]), []).append(index)
            parts = [
                (take(pending[group[0]][0], [pending[index][1] for index in group]), group)
                for group in by_parent.values()
            ]
        for state, part in parts:
            last_logits, attention_mask, last_position = extend(
                model,
                [pending[index][2].tokens for index in part],
                state.cache,
                state.attention_mask,
                state.last_position,
            )
            labels = [row if (row := pending[index][2].row) is not None else -1 - index for index in part]
            yield DecodeState(labels, last_logits, state.cache, attention_mask, last_position)


def join_rows(parts: list[tuple[DecodeState, int]]) -> DecodeState | None:
    """One state over copies of rows of several states (`parts`: state, slot), their
    caches right-aligned in the widest one's width and the columns a row lacks masked
    out, so that their remaining tokens go through the model in one pass: on a CPU a
    pass reads every weight once, and a pass per prompt-pass chunk (a chunk per prompt
    length there) cost about as much as the prefix it saved. None where a layer is not a
    plain or sliding-window dynamic layer holding every column (a sliding layer past its
    window has dropped some)."""
    import torch

    if len({id(state) for state, _ in parts}) == 1:
        return take(parts[0][0], [slot for _, slot in parts])
    width = max(state.attention_mask.shape[1] for state, _ in parts)
    cache = kvcache.join_rows([(state.cache, slot, state.attention_mask.shape[1]) for state, slot in parts], width)
    if cache is None:
        return None
    return DecodeState(
        [slot for _, slot in parts],
        torch.cat([state.last_logits[slot : slot + 1] for state, slot in parts]),
        cache,
        torch.cat(
            [
                torch.nn.functional.pad(
                    state.attention_mask[slot : slot + 1], (width - state.attention_mask.shape[1], 0)
                )
                for state, slot in parts
            ]
        ),
        torch.cat([state.last_position[slot : slot + 1] for state, slot in parts]),
    )


def greedy_batch(
    model,
    rows: list[list[int]],
    budgets: int | list[int],
    pad_id: int,
    eos_ids: set[int],
    finished: Callable[[int, list[int]], bool],
    prompt_labels: list[list[list[int]] | None] | None = None,
    forced: list[tuple[list[int], list[list[int]]] | None] | None = None,
    items: list | None = None,
) -> list[Decoded]:
    """Greedy continuation of each row of a wave, to its budget (`budgets`: one for
    every row, or each row's). The prompt pass (`prompt_states`, shared by the rows of
    one item) is followed by the decoding of each budget's rows as one batch.
    `prompt_labels`: per row, labels to score right after the prompt, from the prompt
    pass's own last logits (the first decoding step's); `forced`: per row, the (answer
    phrase, labels) of its forced answer (see `decode`)."""
    budgets = budgets if isinstance(budgets, list) else [budgets] * len(rows)
    decoded = [Decoded() for _ in rows]
    decoding: dict[int, list[DecodeState]] = {}
    labels_after_prompt = prompt_labels or [None] * len(rows)
    for state in prompt_states(model, rows, pad_id, items):
        scored = [
            (slot, labels) for slot, row in enumerate(state.rows) if (labels := labels_after_prompt[row]) is not None
        ]
        if scored:
            picked = select(state, [slot for slot, _ in scored])  # label scoring reads the cache, never changes it
            scores = label_logprobs(
                model,
                picked.last_logits,
                picked.cache,
                picked.attention_mask,
                picked.last_position,
                [labels for _, labels in scored],
            )
            for row, row_scores in zip(picked.rows, scores):
                decoded[row].label_logprobs = row_scores
        for budget in sorted({budgets[row] for row in state.rows} - {0}):
            decoding.setdefault(budget, []).append(
                select(state, [slot for slot, row in enumerate(state.rows) if budgets[row] == budget])
            )
    # Rows of one budget (one prompt) decode as one batch, with caches sized for that
    # budget: a short direct answer neither holds a CoT's cache width nor makes the CoT
    # rows' cache be copied when it leaves.
    for budget, states in decoding.items():
        merged = merge_states(states, budget)
        for state in [merged] if merged is not None else states:
            decode(model, state, budgets, eos_ids, finished, decoded, forced or [None] * len(rows))
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


def item_groups(requests: list[Encoded]) -> list[list[int]]:
    """Request indices by item (`Encoded.item`), in order of first appearance; a
    request without an item is a group of its own."""
    groups: dict[object, list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(("row", index) if request.item is None else ("item", request.item), []).append(index)
    return list(groups.values())


def wave_plan(requests: list[Encoded], batch_size: int) -> list[list[list[int]]]:
    """The waves `generate` decodes, each a list of item groups of request indices:
    `batch_size` items to a wave, longest first. It depends on the requests and the
    batch size only, so a resumed job's waves are an uninterrupted one's, and a shard
    can tell the results of a wave from any others (inference/shards.py)."""
    groups = item_groups(requests)
    plan = plan_waves([max(len(requests[i].input_ids) for i in group) for group in groups], batch_size)
    return [[groups[g] for g in wave] for wave in plan]


def generate(
    model,
    tokenizer,
    requests: list[Encoded],
    batch_size: int,
    done: dict[int, Generation] | None = None,
    record: Callable[[int, dict[int, Generation]], None] | None = None,
    progress: bool = True,
) -> list[Generation]:
    """A `Generation` per request, in request order, each to its own token budget.

    Waves are planned over items (an item's requests are decoded together, after one
    shared prompt pass), `batch_size` items to a wave, longest first. `done`: results
    an earlier, interrupted or differently configured run has finished (request index:
    result), which are not recomputed; `record(wave, results)` receives every wave's new
    results as soon as they exist. A wave that runs out of GPU memory is split in two
    and retried, and later waves are cut to the largest size that fitted. Scores that
    are NaN at a decoding step raise NotANumber with the requests' indices.
    """
    import torch
    from tqdm import tqdm

    eos_ids = stop_token_ids(model.generation_config, tokenizer)
    plan = wave_plan(requests, batch_size)
    results: dict[int, Generation] = dict(done or {})
    read_back = sum(all(i in results for group in wave for i in group) for wave in plan)
    fitting = batch_size
    bar = tqdm(
        total=len(requests),
        unit="request",
        file=_LineStream(sys.stderr),
        mininterval=15,
        disable=not progress,
        ascii=True,
    )
    bar.update(len(results))
    started = time.monotonic()
    with torch.inference_mode():
        for wave_number, wave in enumerate(plan):
            todo = [[i for i in group if i not in results] for group in wave]
            todo = [group for group in todo if group]
            pending = [todo[start : start + fitting] for start in range(0, len(todo), fitting)][::-1]
            wave_results = {}
            while pending:
                part_groups = pending.pop()
                part = [i for group in part_groups for i in group]
                prefixes = {i: requests[i].completion_prefix for i in part}
                try:
                    outcomes = greedy_batch(
                        model,
                        [requests[i].input_ids for i in part],
                        [requests[i].max_new_tokens for i in part],
                        tokenizer.pad_token_id,
                        eos_ids,
                        lambda row, ids: stated_answer(tokenizer, prefixes[part[row]], ids),  # noqa: B023 (called within this iteration)
                        [requests[i].label_ids if requests[i].scores_prompt else None for i in part],
                        [
                            (phrase, labels)
                            if (phrase := requests[i].forced_ids) and (labels := requests[i].label_ids)
                            else None
                            for i in part
                        ],
                        [requests[i].item for i in part],
                    )
                except NotANumber as error:
                    raise NotANumber([part[row] for row in error.rows]) from None
                except Exception as error:
                    if not (_is_out_of_memory(error) and len(part_groups) > 1):
                        raise
                    torch.cuda.empty_cache()
                    fitting = len(part_groups) // 2
                    logger.info(
                        f"a wave of {len(part_groups)} items ran out of GPU memory: retrying as {fitting} "
                        f"+ {len(part_groups) - fitting}"
                    )
                    pending.extend([part_groups[fitting:], part_groups[:fitting]])
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
                        [len(ids) for ids in requests[index].label_ids or []]
                        if outcome.label_logprobs is not None
                        else None,
                    )
                bar.update(len(part))
            if wave_results:
                results.update(wave_results)
                if record is not None:
                    record(wave_number, wave_results)
    bar.close()
    logger.info(
        f"generated for {len(requests)} requests in {time.monotonic() - started:.1f}s ({read_back} of "
        f"{len(plan)} waves read back from an earlier run)"
    )
    return [results[i] for i in range(len(requests))]
