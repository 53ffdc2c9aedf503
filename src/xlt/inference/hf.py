"""The transformers engine as a prediction backend: requests encoded with the model's
tokenizer, decoded in resumable waves (inference/engine.py, inference/shards.py)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from .engine import generate, resolve_batch_size
from .requests import Generation, Request, encode_all
from .shards import Shard, run_fingerprint


class HFBackend:
    def __init__(self, spec, tokenizer, model, batch_size: int | str, signature: dict, log=print):
        """`signature`: what besides the requests decides the outputs (code, model
        files, settings), for the resume shards' fingerprints."""
        self.name = spec.name
        self.spec, self.tokenizer, self.model, self.log = spec, tokenizer, model, log
        self.batch_size = resolve_batch_size(batch_size, model)
        self.signature = signature

    def run(self, requests: list[Request], resume: dict[str, Path] | None = None) -> list[Generation]:
        """Every prompt's requests in one run (an item's prompts share their prompt
        pass). `resume`: per prompt (`Request.job`), the shard where its finished
        results are kept; each prompt's shard has a fingerprint of its own requests, so
        a run whose other prompt changed reads this one's results back."""
        encoded = encode_all(self.tokenizer, self.spec, requests)
        shards: dict[str, tuple[Shard, list[int]]] = {}
        for job, path in (resume or {}).items():
            members = [index for index, request in enumerate(requests) if request.job == job]
            fingerprint = run_fingerprint(
                **self.signature,
                cells=sorted({cell for index in members for cell in requests[index].cells}),
                batch_size=self.batch_size,
                requests=[(requests[index].item_id, asdict(encoded[index])) for index in members],
            )
            shard = Shard(path, fingerprint)
            shards[job] = shard, members
            self.log(f"{job}: {len(shard.completed())} of {len(members)} results read back from {path}")
        done = {members[local]: Generation(**fields) for shard, members in shards.values() for local, fields in shard.completed().items()}

        def record(wave: int, results: dict[int, Generation]) -> None:
            for shard, members in shards.values():
                finished = {local: asdict(results[index]) for local, index in enumerate(members) if index in results}
                if finished:
                    shard.append(wave, finished)

        return generate(self.model, self.tokenizer, encoded, self.batch_size, done=done, record=record, log=self.log)
