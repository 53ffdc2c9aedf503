"""Forward passes over a KV cache, shared by generation and label scoring: the prompt
pass (`prefill`), more tokens after a cached context (`extend`), and the
log-probabilities of option labels after it (`label_logprobs`), which never change the
cache they read, so decoding goes on from it unchanged."""

from __future__ import annotations

from ..batching import pad, positions
from .kvcache import cache_keyword, copy_rows


def prefill(model, rows: list[list[int]], pad_id: int):
    """One forward pass over left-padded rows keeping the logits of the last position
    only; returns (last logits, cache, attention mask, last positions)."""
    input_ids, attention_mask = pad(rows, pad_id)
    input_ids, attention_mask = input_ids.to(model.device), attention_mask.to(model.device)
    position_ids = positions(attention_mask)
    output = model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True, logits_to_keep=1
    )
    return output.logits[:, -1], getattr(output, cache_keyword(model)), attention_mask, position_ids[:, -1]


def extend(model, feeds: list[list[int]], cache, attention_mask, last_position):
    """Feed every row of the cache its tokens (all rows the same number) after its
    context; returns (last logits, attention mask, last positions) after them."""
    import torch

    input_ids = torch.tensor(feeds, dtype=torch.long, device=model.device)
    added = input_ids.shape[1]
    attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(feeds), added))], dim=-1)
    position_ids = last_position[:, None] + 1 + torch.arange(added, device=model.device)
    output = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=True,
        logits_to_keep=1,
        **{cache_keyword(model): cache},
    )
    return output.logits[:, -1], attention_mask, position_ids[:, -1]


# How many context tokens (summed over rows) and logits one pass over label tails may
# hold: each row of the pass carries a copy of its context's cache, and the cloze cell's
# four options per item would otherwise copy a whole wave's cache four times at once
# (gigabytes on a laptop for 64 items of a few hundred tokens), with logits over the
# whole vocabulary at every tail position (Gemma's 262k words).
TAIL_PASS_CONTEXT_TOKENS = 16384
TAIL_PASS_LOGITS = 2**27


def tail_slices(lengths: list[int], context: int, vocabulary: int) -> list[list[int]]:
    """The label tails' passes: indices of `lengths` (each label's token count) whose
    tail (the tokens after the first) is fed, shortest first, so that a pass's rows
    are about as long and little of it is padding, as many to a pass as the memory
    bounds above allow for rows of `context` cached tokens. A one-token label has no
    tail: it is read from the context's last logits."""
    slices: list[list[int]] = []
    rows_for_context = max(1, TAIL_PASS_CONTEXT_TOKENS // context)
    for index in sorted((i for i, length in enumerate(lengths) if length > 1), key=lambda i: lengths[i]):
        width = lengths[index] - 1
        if (
            slices
            and len(slices[-1]) < rows_for_context
            and (len(slices[-1]) + 1) * width * vocabulary <= TAIL_PASS_LOGITS
        ):
            slices[-1].append(index)
        else:
            slices.append([index])
    return slices


def label_logprobs(
    model, last_logits, cache, attention_mask, last_position, labels: list[list[list[int]]]
) -> list[list[float]]:
    """Log-likelihood of each row's labels (token id lists) as continuations of its
    cached context. A label's first token is read from the context's last logits; the
    rest of multi-token labels from more passes over copies of the cache, each row
    repeated once per label it has with a tail (`tail_slices`)."""
    import torch

    first = torch.log_softmax(last_logits.float(), dim=-1)
    scores = [[float(first[row, ids[0]]) for ids in row_labels] for row, row_labels in enumerate(labels)]
    per_row = len(labels[0])
    choices = [ids for row_labels in labels for ids in row_labels]
    for part in tail_slices([len(ids) for ids in choices], attention_mask.shape[1], last_logits.shape[-1]):
        repeated = torch.tensor([index // per_row for index in part], device=attention_mask.device)
        # Row r feeds label r's tokens but its last, right-padded: the logits at each fed
        # token score the next one, and padding after the last real token is never read.
        tail_ids, tail_mask = pad([choices[index][:-1] for index in part], 0, side="right")
        output = model(
            input_ids=tail_ids.to(model.device),
            attention_mask=torch.cat([attention_mask[repeated], tail_mask.to(model.device)], dim=-1),
            position_ids=last_position[repeated][:, None] + 1 + torch.arange(tail_ids.shape[1], device=model.device),
            use_cache=True,
            **{cache_keyword(model): copy_rows(cache, repeated)},
        )
        logprobs = torch.log_softmax(output.logits.float(), dim=-1)
        for row, index in enumerate(part):
            tail = choices[index][1:]
            scores[index // per_row][index % per_row] += float(
                logprobs[row, torch.arange(len(tail)), torch.tensor(tail)].sum()
            )
    return scores
