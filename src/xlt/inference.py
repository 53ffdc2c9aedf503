"""Batched greedy generation over Belebele items, with the raw text kept.

Prompts of every language are sorted by length before batching, so a batch pads
little; batches are left-padded so generation continues every row from its last
token; a row stops as soon as it has stated an answer (or at the token budget), which
matters most for chain-of-thought, where decoding is most of the cost.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pandas as pd

from .extract import extract, extract_choice
from .models import encode_prompt
from .prompts import Template, options_of, render


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


def _stopping_criteria(tokenizer, prefixes: list[str], prompt_length: int):
    import torch
    from transformers import StoppingCriteria

    class AnswerStated(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            texts = tokenizer.batch_decode(input_ids[:, prompt_length:], skip_special_tokens=True)
            done = [answer_complete(prefix + text) for prefix, text in zip(prefixes, texts)]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return AnswerStated()


def _left_pad(batch: list[Request], pad_id: int, device):
    import torch

    width = max(len(r.input_ids) for r in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, request in enumerate(batch):
        n = len(request.input_ids)
        input_ids[row, width - n:] = torch.tensor(request.input_ids)
        attention_mask[row, width - n:] = 1
    return input_ids.to(device), attention_mask.to(device)


def generate(model, tokenizer, requests: list[Request], max_new_tokens: int, batch_size: int, progress: bool = True) -> list[tuple[str, int]]:
    """(generated text, number of generated tokens) per request, in request order."""
    import torch
    from tqdm import tqdm
    from transformers import GenerationConfig, StoppingCriteriaList

    stop_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    eos = tokenizer.eos_token_id
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=eos,
    )
    # Longest first: memory trouble shows at the start, and the ETA errs long.
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i].input_ids))
    results: list[tuple[str, int] | None] = [None] * len(requests)
    bar = tqdm(total=len(requests), unit="item", file=sys.stderr, mininterval=10, disable=not progress)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            indices = order[start:start + batch_size]
            batch = [requests[i] for i in indices]
            input_ids, attention_mask = _left_pad(batch, tokenizer.pad_token_id, model.device)
            stopping = StoppingCriteriaList([_stopping_criteria(tokenizer, [r.completion_prefix for r in batch], input_ids.shape[1])])
            output = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=config,
                stopping_criteria=stopping,
            )
            new_tokens = output[:, input_ids.shape[1]:].tolist()
            for index, tokens in zip(indices, new_tokens):
                # Rows that finish early are padded: count up to the first stop
                # token, the end-of-sequence token itself included.
                end = next((k for k, t in enumerate(tokens) if t in stop_ids), len(tokens))
                length = end + (1 if end < len(tokens) and tokens[end] == eos else 0)
                results[index] = (tokenizer.decode(tokens[:end], skip_special_tokens=True), length)
            bar.update(len(batch))
    bar.close()
    return results


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
