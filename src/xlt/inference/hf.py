"""The transformers engine as a prediction backend: requests encoded with the model's
tokenizer, decoded in resumable waves (inference/engine.py, inference/shards.py)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from .engine import Generation, generate, resolve_batch_size
from .requests import Request, encode_all, run_budget
from .shards import Shard, run_fingerprint


class HFBackend:
    def __init__(self, spec, tokenizer, model, batch_size: int | str, signature: dict, log=print):
        """`signature`: what besides the requests decides the outputs (code, model
        files, settings), for the resume shard's fingerprint."""
        self.name = spec.name
        self.spec, self.tokenizer, self.model, self.log = spec, tokenizer, model, log
        self.batch_size = resolve_batch_size(batch_size, model)
        self.signature = signature

    def run(self, requests: list[Request], resume: Path | None = None) -> list[Generation]:
        max_new_tokens = run_budget(self.name, requests)
        encoded = encode_all(self.tokenizer, self.spec, requests)
        shard = None
        if resume is not None:
            fingerprint = run_fingerprint(
                **self.signature,
                cells=sorted({cell for request in requests for cell in request.cells}),
                max_new_tokens=max_new_tokens,
                batch_size=self.batch_size,
                requests=[(request.item_id, asdict(item)) for request, item in zip(requests, encoded)],
            )
            shard = Shard(resume, fingerprint)
        return generate(self.model, self.tokenizer, encoded, max_new_tokens, self.batch_size, shard=shard, log=self.log)
