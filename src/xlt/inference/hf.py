"""The transformers engine as a prediction backend: requests encoded with the model's
tokenizer, decoded in resumable waves (inference/engine.py, inference/shards.py)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from ..errors import XltError
from .backend import Backend
from .engine import NotANumber, generate, resolve_batch_size, wave_plan
from .requests import Generation, Request, encode_all, is_generation
from .shards import PromptShards

logger = logging.getLogger(__name__)


class HFBackend(Backend):
    def __init__(self, spec, tokenizer, model, batch_size: int | str, signature: dict):
        """`signature`: what besides the requests decides the outputs (code, model
        files, settings), for the resume shards' fingerprints."""
        self.name = spec.name
        self.spec, self.tokenizer, self.model = spec, tokenizer, model
        self.batch_size = resolve_batch_size(batch_size, model)
        self.signature = signature

    def run(self, requests: list[Request], resume: Mapping[str, Path] | None = None) -> list[Generation]:
        """Every prompt's requests in one run (an item's prompts share their prompt
        pass). `resume`: per prompt (`Request.job`), the shard where its finished
        results are kept; each prompt's shard has a fingerprint of its own requests, so
        a run whose other prompt changed reads this one's results back. A stored result
        is read back only for the request it names, from the wave that request is in."""
        encoded = encode_all(self.tokenizer, self.spec, requests)
        wave_of = {
            index: number
            for number, wave in enumerate(wave_plan(encoded, self.batch_size))
            for group in wave
            for index in group
        }
        shards = PromptShards(
            requests, encoded, resume, {**self.signature, "batch_size": self.batch_size}, wave_of, is_generation
        )
        done = {index: Generation(**fields) for index, fields in shards.completed().items()}

        def record(wave: int, results: dict[int, Generation]) -> None:
            shards.record(wave, {index: asdict(result) for index, result in results.items()})

        try:
            return generate(self.model, self.tokenizer, encoded, self.batch_size, done=done, record=record)
        except NotANumber as error:
            request = requests[error.rows[0]]
            raise XltError(
                f"model {self.name}: item {request.item_id} ({request.lang}), prompt {request.job}: the "
                "scores of the next token are NaN at a decoding "
                f"step ({len(error.rows)} request(s) of the wave); a NaN never counts as the likeliest "
                "token: check the weights and inference.dtype"
            ) from None
