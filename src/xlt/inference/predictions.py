"""The predictions contract (paths.predictions_frame) from requests and their results:
one frame per cell a job fills, the same from every backend."""

from __future__ import annotations

import json

from ..choices import DEFAULT_NORMALISATION, OptionScore, cloze_choice, cloze_raw, debiased_choice, likeliest_label, rotation_choices
from ..extract import extract_choice
from ..paths import CHOICE_PROMPT, CLOZE_PROMPT, predictions_frame
from ..prompts import LETTERS, ROTATIONS
from .requests import Generation, Request


def _likeliest(logprobs: list[float] | None, where: str) -> int | None:
    return None if logprobs is None else likeliest_label(logprobs, where)


def _rotations(request: Request, result: Generation, parts: dict, where: str) -> dict:
    """The choice row's rotation columns, from the label log-probabilities of the
    prompt as shown and of its three rotated copies (`parts`)."""
    others = [parts.get((request.lang, request.item_id, rotation)) for rotation in range(1, ROTATIONS)]
    if any(other is None for other in others):
        return {}
    rotations = [result.label_logprobs, *(other.label_logprobs for other in others)]
    chosen = rotation_choices(rotations, f"{where}, rotations")
    return {"debiased_choice": debiased_choice(rotations), "rotation_choices": json.dumps(chosen)}


def _cloze(request: Request, result: Generation, parts: dict) -> dict:
    """The cloze row: each option's scores (raw_output, choices.cloze_raw), and the
    option chosen under the default normalisation (`xlt score` applies the configured
    one, prompts.cloze_normalisation)."""
    alone = parts[(request.lang, request.item_id, "unconditional")]
    options = [
        OptionScore(logprob, tokens, len(text), unconditional)
        for logprob, tokens, text, unconditional in zip(result.label_logprobs, result.label_tokens, request.continuations, alone.label_logprobs)
    ]
    raw = cloze_raw(options)
    choice, _ = cloze_choice(options, DEFAULT_NORMALISATION)
    return {"raw_output": raw, "parsed_choice": choice, "n_output_tokens": 0, "stop_reason": None, "forced_choice": choice}


def _row(request: Request, result: Generation, cell: str, model: str, parts: dict) -> dict:
    """A generated cell reads the text (strictly: `parsed_choice` is the stated answer
    only; `forced_choice` falls back on the forced pass, or for `direct` on the labels
    at its answer position); the choice cell and the harness's direct cell read the
    label log-probabilities after the prompt, the cloze cell its options'."""
    where = f"model {model}: item {request.item_id} ({request.lang}), prompt {cell}"
    if cell == CLOZE_PROMPT:
        reading = _cloze(request, result, parts)
    elif cell == CHOICE_PROMPT or request.harness:
        choice = _likeliest(result.label_logprobs, where)
        raw = f"Answer: {LETTERS[choice - 1]}" if request.harness else json.dumps(dict(zip(LETTERS, result.label_logprobs)))
        reading = {"raw_output": raw, "parsed_choice": choice, "n_output_tokens": 0, "stop_reason": None, "forced_choice": choice}
        if cell == CHOICE_PROMPT:
            reading.update(_rotations(request, result, parts, where))
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
    parts = {}
    for request, result in zip(requests, results):
        if request.rotation:
            parts[(request.lang, request.item_id, request.rotation)] = result
        elif request.unconditional:
            parts[(request.lang, request.item_id, "unconditional")] = result
    rows: dict[str, list[dict]] = {}
    for request, result in zip(requests, results):
        for cell in request.cells:
            rows.setdefault(cell, []).append({"model": model, "variant": variant, **_row(request, result, cell, model, parts)})
    return {cell: predictions_frame(cell_rows) for cell, cell_rows in rows.items()}
