"""The transformers engine as a prediction backend: requests encoded with the model's
tokenizer, decoded in resumable waves (inference/engine.py, inference/shards.py)."""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

from ..errors import XltError
from .engine import NotANumber, generate, resolve_batch_size, wave_plan
from .requests import Generation, Request, encode_all
from .shards import Shard, identity, run_fingerprint

_GENERATION_FIELDS = {field.name for field in fields(Generation)}


def is_generation(stored: object) -> bool:
    """Whether a result read back from a shard has a Generation's fields and types."""
    if not (isinstance(stored, dict) and set(stored) == _GENERATION_FIELDS):
        return False
    counts = [stored[name] for name in ("n_prompt_tokens", "n_output_tokens")]
    scores = [stored[name] for name in ("label_logprobs", "forced_logprobs")]
    return (
        isinstance(stored["text"], str)
        and all(type(count) is int and count >= 0 for count in counts)
        and stored["stop_reason"] in ("answer", "eos", "budget")
        and all(score is None or (isinstance(score, list) and all(type(value) in (int, float) for value in score)) for score in scores)
        and (
            stored["label_tokens"] is None
            or (isinstance(stored["label_tokens"], list) and all(type(count) is int and count > 0 for count in stored["label_tokens"]))
        )
    )


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
        a run whose other prompt changed reads this one's results back. A stored result
        is read back only for the request it names, from the wave that request is in."""
        encoded = encode_all(self.tokenizer, self.spec, requests)
        wave_of = {index: number for number, wave in enumerate(wave_plan(encoded, self.batch_size)) for group in wave for index in group}
        shards: dict[str, tuple[Shard, list[int]]] = {}
        for job, path in (resume or {}).items():
            members = [index for index, request in enumerate(requests) if request.job == job]
            fingerprint = run_fingerprint(
                **self.signature,
                cells=sorted({cell for index in members for cell in requests[index].cells}),
                batch_size=self.batch_size,
                requests=[(requests[index].item_id, asdict(encoded[index])) for index in members],
            )
            identities = [identity(f"{requests[index].lang}/{requests[index].item_id}", job, asdict(encoded[index])) for index in members]
            shard = Shard(path, fingerprint, identities, [wave_of[index] for index in members], is_generation)
            shards[job] = shard, members
            rejected = f"; {shard.rejected} line(s) torn, malformed, edited or not of their wave: their results are recomputed" if shard.rejected else ""
            self.log(f"{job}: {len(shard.completed())} of {len(members)} results read back from {path}{rejected}")
        done = {members[local]: Generation(**fields) for shard, members in shards.values() for local, fields in shard.completed().items()}

        def record(wave: int, results: dict[int, Generation]) -> None:
            for shard, members in shards.values():
                finished = {local: asdict(results[index]) for local, index in enumerate(members) if index in results}
                if finished:
                    shard.append(wave, finished)

        try:
            return generate(self.model, self.tokenizer, encoded, self.batch_size, done=done, record=record, log=self.log)
        except NotANumber as error:
            request = requests[error.rows[0]]
            raise XltError(
                f"model {self.name}: item {request.item_id} ({request.lang}), prompt {request.job}: the scores of the next token are NaN at a decoding "
                f"step ({len(error.rows)} request(s) of the wave); a NaN never counts as the likeliest token: check the weights and inference.dtype"
            ) from None
