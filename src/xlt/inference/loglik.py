"""`loglik` scoring: the option whose letter the model finds most likely after
lm-evaluation-harness's Belebele prompt, the way the harness scores the task.

Context and continuation are tokenized as the harness does (trailing spaces of the
context move to the continuation; the continuation is the tail of the tokenized
whole). One forward pass of the shared context, with the output layer on its last
position alone, scores the first token of all four choices; the few tokenizers that
split " A" in two need one short extra pass over the cached context.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .. import paths
from ..prompts import HARNESS_CHOICES, LETTERS, harness_context
from .engine import cache_keyword, max_padding_share, plan_batches, prefill


@dataclass(frozen=True)
class ChoiceRequest:
    item_id: str
    lang: str
    context_ids: list[int]
    choice_ids: list[list[int]]
    answer: int


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-evaluation-harness's `_encode_pair` for causal models."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer.encode(context + continuation)
    context_ids = tokenizer.encode(context)
    return context_ids, whole[len(context_ids) :]


def build_choice_requests(items: pd.DataFrame, tokenizer) -> list[ChoiceRequest]:
    requests = []
    for item in items.to_dict("records"):
        context = harness_context(item)
        pairs = [encode_pair(tokenizer, context, choice) for choice in HARNESS_CHOICES]
        requests.append(ChoiceRequest(item["item_id"], item["lang"], pairs[0][0], [ids for _, ids in pairs], int(item["correct_answer_num"])))
    return requests


def _batch_scores(model, batch: list[ChoiceRequest], pad_id: int) -> list[list[float]]:
    """Log-likelihood of each request's four choices. The shared context is run once;
    a choice's first token is scored from the context's last logits, and the rest of
    multi-token choices from one more pass over the context's cache, repeated per
    choice."""
    import torch

    last_logits, cache, attention_mask, last_position = prefill(model, [r.context_ids for r in batch], pad_id)
    first = torch.log_softmax(last_logits.float(), dim=-1)
    scores = [[float(first[row, ids[0]]) for ids in request.choice_ids] for row, request in enumerate(batch)]
    choices = [ids for request in batch for ids in request.choice_ids]
    width = max(len(ids) for ids in choices) - 1
    if width == 0:
        return scores
    cache.batch_repeat_interleave(4)
    # Row r feeds choice r's tokens but its last, right-padded: the logits at each fed
    # token score the next one, and padding after the last real token is never read.
    tail_ids = torch.full((len(choices), width), pad_id, dtype=torch.long)
    tail_mask = torch.zeros((len(choices), width), dtype=torch.long)
    for row, ids in enumerate(choices):
        tail_ids[row, : len(ids) - 1] = torch.tensor(ids[:-1], dtype=torch.long)
        tail_mask[row, : len(ids) - 1] = 1
    positions = last_position.repeat_interleave(4)[:, None] + 1 + torch.arange(width, device=model.device)
    output = model(
        input_ids=tail_ids.to(model.device),
        attention_mask=torch.cat([attention_mask.repeat_interleave(4, dim=0), tail_mask.to(model.device)], dim=-1),
        position_ids=positions,
        use_cache=True,
        **{cache_keyword(model): cache},
    )
    logprobs = torch.log_softmax(output.logits.float(), dim=-1)
    for row, ids in enumerate(choices):
        tail = ids[1:]
        if tail:
            scores[row // 4][row % 4] += float(logprobs[row, torch.arange(len(tail)), torch.tensor(tail)].sum())
    return scores


def score_choices(model, tokenizer, requests: list[ChoiceRequest], batch_size: int) -> list[list[float]]:
    """Log-likelihood of each choice per request, in request order, contexts of
    similar length batched together (as the generation engine plans its prefill)."""
    import torch

    scores: dict[int, list[float]] = {}
    plan = plan_batches([len(r.context_ids) for r in requests], batch_size, max_padding_share(model))
    with torch.inference_mode():
        for indices in plan:
            for index, row in zip(indices, _batch_scores(model, [requests[i] for i in indices], tokenizer.pad_token_id)):
                scores[index] = row
    return [scores[i] for i in range(len(requests))]


def loglik_frame(requests: list[ChoiceRequest], scores: list[list[float]], model_name: str, variant: str) -> pd.DataFrame:
    """The predictions contract for loglik scoring: the chosen letter is written as the
    harness's prompt would continue ("Answer: B"), so re-extraction reads it back."""
    rows = []
    for request, row in zip(requests, scores):
        choice = max(range(4), key=lambda k: row[k]) + 1
        rows.append(
            {
                "item_id": request.item_id,
                "lang": request.lang,
                "model": model_name,
                "variant": variant,
                "prompt": "direct",
                "raw_output": f"Answer: {LETTERS[choice - 1]}",
                "parsed_choice": choice,
                "answer": request.answer,
                "correct": choice == request.answer,
                "n_prompt_tokens": len(request.context_ids),
                "n_output_tokens": 0,
            }
        )
    return paths.predictions_frame(rows)
