"""The predictions contract (paths.predictions_frame) from requests and their results:
one frame per cell a job fills, the same from every backend."""

from __future__ import annotations

import json
import math

from ..errors import XltError
from ..extract import extract_choice
from ..paths import CHOICE_PROMPT, predictions_frame
from ..prompts import LETTERS
from .requests import Generation, Request


def _likeliest(logprobs: list[float] | None, where: str) -> int | None:
    """The label (1-4) of the largest log-probability; a NaN among them is an error
    naming `where` (max() would keep whichever came first, a NaN or not)."""
    if logprobs is None:
        return None
    if any(math.isnan(value) for value in logprobs):
        raise XltError(
            f"{where}: a label log-probability is NaN ({logprobs}); a NaN never counts as the likeliest label: check the weights and inference.dtype"
        )
    return max(range(len(logprobs)), key=logprobs.__getitem__) + 1


def _row(request: Request, result: Generation, cell: str, model: str) -> dict:
    """A generated cell reads the text (strictly: `parsed_choice` is the stated answer
    only; `forced_choice` falls back on the forced pass, or for `direct` on the labels
    at its answer position); the choice cell and the harness's direct cell read the
    label log-probabilities after the prompt."""
    where = f"model {model}: item {request.item_id} ({request.lang}), prompt {cell}"
    if cell == CHOICE_PROMPT or request.harness:
        choice = _likeliest(result.label_logprobs, where)
        raw = f"Answer: {LETTERS[choice - 1]}" if request.harness else json.dumps(dict(zip(LETTERS, result.label_logprobs)))
        reading = {"raw_output": raw, "parsed_choice": choice, "n_output_tokens": 0, "stop_reason": None, "forced_choice": choice}
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
    """Cell (prompt) -> its predictions, every language, in request order."""
    rows: dict[str, list[dict]] = {}
    for request, result in zip(requests, results):
        for cell in request.cells:
            rows.setdefault(cell, []).append({"model": model, "variant": variant, **_row(request, result, cell, model)})
    return {cell: predictions_frame(cell_rows) for cell, cell_rows in rows.items()}
