"""The predictions contract (paths.predictions_frame) from requests and their results:
one frame per cell a job fills, the same from every backend."""

from __future__ import annotations

import json
from typing import TypeVar

from ..choices import (
    DEFAULT_NORMALISATION,
    OptionScore,
    cloze_choice,
    cloze_raw,
    debiased_choice,
    likeliest_label,
    rotation_choices,
)
from ..errors import XltError
from ..extract import extract_choice
from ..paths import CHOICE_PROMPT, CLOZE_PROMPT, predictions_frame
from ..prompts import LETTERS, ROTATIONS
from .requests import Generation, Request

T = TypeVar("T")
# (language, item id, rotation number or "unconditional") -> the result of a request
# that is part of another request's row.
Parts = dict[tuple[str, str, int | str], Generation]


def _required(value: T | None, what: str, where: str) -> T:
    """A result's field that the request asked for (a backend that left it out is at
    fault), or one line saying which is missing."""
    if value is None:
        raise XltError(f"{where}: the backend returned no {what}")
    return value


def _likeliest(logprobs: list[float] | None, where: str) -> int | None:
    return None if logprobs is None else likeliest_label(logprobs, where)


def _rotations(request: Request, labels: list[float], parts: Parts, where: str) -> dict:
    """The choice row's rotation columns, from the label log-probabilities of the
    prompt as shown (`labels`) and of its three rotated copies (`parts`)."""
    others = [
        parts[key] for rotation in range(1, ROTATIONS) if (key := (request.lang, request.item_id, rotation)) in parts
    ]
    if len(others) < ROTATIONS - 1:
        return {}
    rotations = [
        labels,
        *(_required(other.label_logprobs, "label log-probabilities of a rotation", where) for other in others),
    ]
    chosen = rotation_choices(rotations, f"{where}, rotations")
    return {"debiased_choice": debiased_choice(rotations), "rotation_choices": json.dumps(chosen)}


def _cloze(request: Request, result: Generation, parts: Parts, where: str) -> dict:
    """The cloze row: each option's scores (raw_output, choices.cloze_raw), and the
    option chosen under the default normalisation (`xlt score` applies the configured
    one, prompts.cloze_normalisation)."""
    alone = parts[(request.lang, request.item_id, "unconditional")]
    options = [
        OptionScore(logprob, tokens, len(text), unconditional)
        for logprob, tokens, text, unconditional in zip(
            _required(result.label_logprobs, "option scores", where),
            _required(result.label_tokens, "option token counts", where),
            _required(request.continuations, "options", where),
            _required(alone.label_logprobs, "option scores after the answer phrase alone", where),
        )
    ]
    raw = cloze_raw(options)
    choice, _ = cloze_choice(options, DEFAULT_NORMALISATION)
    return {
        "raw_output": raw,
        "parsed_choice": choice,
        "n_output_tokens": 0,
        "stop_reason": None,
        "forced_choice": choice,
    }


def _row(request: Request, result: Generation, cell: str, model: str, parts: Parts) -> dict:
    """A generated cell reads the text (strictly: `parsed_choice` is the stated answer
    only; `forced_choice` falls back on the forced pass, or for `direct` on the labels
    at its answer position); the choice cell and the harness's direct cell read the
    label log-probabilities after the prompt, the cloze cell its options'."""
    where = f"model {model}: item {request.item_id} ({request.lang}), prompt {cell}"
    if cell == CLOZE_PROMPT:
        reading = _cloze(request, result, parts, where)
    elif cell == CHOICE_PROMPT or request.harness:
        labels = _required(result.label_logprobs, "label log-probabilities", where)
        likeliest = likeliest_label(labels, where)
        raw = f"Answer: {LETTERS[likeliest - 1]}" if request.harness else json.dumps(dict(zip(LETTERS, labels)))
        reading = {
            "raw_output": raw,
            "parsed_choice": likeliest,
            "n_output_tokens": 0,
            "stop_reason": None,
            "forced_choice": likeliest,
        }
        if cell == CHOICE_PROMPT:
            reading.update(_rotations(request, labels, parts, where))
    else:
        raw = request.prompt.completion_prefix + result.text
        choice = extract_choice(raw, request.options)
        forced = choice if choice is not None else _likeliest(result.forced_logprobs or result.label_logprobs, where)
        reading = {
            "raw_output": raw,
            "parsed_choice": choice,
            "n_output_tokens": result.n_output_tokens,
            "stop_reason": result.stop_reason,
            "forced_choice": forced,
        }
    return {
        "item_id": request.item_id,
        "lang": request.lang,
        "prompt": cell,
        "answer": request.answer,
        "correct": reading["parsed_choice"] == request.answer,
        "n_prompt_tokens": result.n_prompt_tokens,
        **reading,
    }


def prediction_frames(requests: list[Request], results: list[Generation], model: str, variant: str) -> dict:
    """Cell (prompt) -> its predictions, every language, in request order. Requests
    that fill no cell (rotations, the cloze's unconditional pass) are parts of another
    request's row."""
    parts: Parts = {}
    for request, result in zip(requests, results):
        if request.rotation:
            parts[(request.lang, request.item_id, request.rotation)] = result
        elif request.unconditional:
            parts[(request.lang, request.item_id, "unconditional")] = result
    rows: dict[str, list[dict]] = {}
    for request, result in zip(requests, results):
        for cell in request.cells:
            rows.setdefault(cell, []).append(
                {"model": model, "variant": variant, **_row(request, result, cell, model, parts)}
            )
    return {cell: predictions_frame(cell_rows) for cell, cell_rows in rows.items()}
