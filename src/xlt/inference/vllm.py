"""The vLLM backend, for the paper's models (tensor parallel over the job's GPUs).

Same requests (token ids rendered by the same templates) and the same results as the
transformers engine. The adapter is served by vLLM's LoRA support instead of being
merged, and prefix caching (`enable_prefix_caching`) computes what an item's prompts
share (chat header, passage, question, options) once, as the transformers engine's
shared prompt pass does.
vLLM cannot stop on our answer test, so each output is cut afterwards where the
transformers engine would have stopped (`cut_at_answer`). Label log-probabilities
(the choice cell, the forced answer after a chain of thought that states none) come
from a second generate call: one one-token request per label token, its prompt the
context and the label's tokens before it, the token forced (`allowed_token_ids`) and
its log-probability returned (`logprobs=0`, computed from the raw logits over the whole
vocabulary). Prefix caching serves the shared context from the first call's cache, so
only the last prompt token (and a forced answer's continuation and phrase) is computed
again. (`prompt_logprobs` would read a label in one request, but vLLM skips the prefix
cache for requests that ask for them.) The cloze cell's option texts, after the cloze
prompt and after the answer phrase alone, and the choice cell's rotated prompts are
scored the same way: a continuation is a label of several tokens. The log-probabilities must be vLLM's raw ones
(`logprobs_mode` raw_logprobs, computed before `allowed_token_ids` masks the other
tokens): under processed_logprobs every forced label would score 0 and the first label
would win every tie; the engine's own setting is checked after it starts.
Requests go in waves of items whose results are kept in the prompts' shards
(inference/shards.py), so a job killed at its time limit continues where it stopped,
as the transformers backend does. vllm itself is imported only here, when a job runs:
it pins its own transformers, so it lives in the jobs' conda environment
(envs/vllm.yaml), not in xlt's install.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import XltError
from ..models import ModelSpec, serving_checkpoint
from .backend import Backend
from .requests import Encoded, Generation, Request, encode_all, is_generation
from .shards import PromptShards
from .stopping import stated_answer, stop_token_ids

logger = logging.getLogger(__name__)

# The LoRA ranks vLLM can reserve (vllm.config.lora.MaxLoRARanks).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
LOGPROBS_MODE = "raw_logprobs"
# Items per wave: what a killed job recomputes at most; large enough that vLLM's own
# scheduler keeps its batches full (each item is two to three requests).
WAVE_ITEMS = 512


def model_len(encoded: list[Encoded]) -> int:
    """The longest sequence any request needs: its prompt and whole token budget, then
    for a chain of thought without an answer the answer phrase and its longest label
    (vLLM refuses a request longer than max_model_len, and sizes its cache by it)."""
    return max(
        len(item.input_ids)
        + item.max_new_tokens
        + len(item.forced_ids or [])
        + max((len(label) for label in item.label_ids or []), default=0)
        for item in encoded
    )


def lora_rank(adapter_dir: str | Path | None) -> int | None:
    """The rank of the adapter the recipe trained (its adapter_config.json)."""
    if adapter_dir is None:
        return None
    return int(json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))["r"])


def engine_args(
    spec: ModelSpec, base_dir: str, settings: dict, *, gpus: int, needed_len: int, rank: int | None
) -> dict:
    """Keyword arguments of `vllm.LLM` for one model (`settings`: its inference block):
    tensor parallel over the job's `gpus`, a context of `needed_len` tokens (the
    longest request, xlt.inference.vllm.model_len) unless max_model_len sets more, the
    adapter served unmerged with room for its `rank`, raw log-probabilities."""
    configured = settings["tensor_parallel_size"]
    if gpus and configured > 1 and configured != gpus:
        raise XltError(
            f"model {spec.name}: inference.tensor_parallel_size {configured} is not the job's {gpus} "
            "GPU(s) (inference.resources.gpu); "
            "vLLM splits the model over every GPU of the job: leave it at 1 or set it to the GPUs"
        )
    if settings["max_model_len"] is not None and settings["max_model_len"] < needed_len:
        raise XltError(
            f"model {spec.name}: inference.max_model_len {settings['max_model_len']} is shorter than the "
            f"longest request ({needed_len} tokens: prompt, "
            "token budget, answer phrase and label); raise it or leave it unset"
        )
    location, revision = serving_checkpoint(base_dir)
    args = {
        "model": location,
        "revision": revision,
        "dtype": settings["dtype"],
        "tensor_parallel_size": gpus or configured,
        "max_model_len": settings["max_model_len"] or needed_len,
        "gpu_memory_utilization": settings["gpu_memory_utilization"],
        "enable_prefix_caching": True,
        "load_format": "safetensors",  # never fall back to pickled weights
        "trust_remote_code": spec.trust_remote_code,
        "seed": 0,
        "logprobs_mode": LOGPROBS_MODE,
        "enable_lora": rank is not None,
    }
    if rank is not None:
        reserved = next((allowed for allowed in VLLM_LORA_RANKS if allowed >= rank), None)
        if reserved is None:
            raise XltError(f"model {spec.name}: LoRA rank {rank} is above vLLM's largest, {VLLM_LORA_RANKS[-1]}")
        args["max_lora_rank"] = reserved
    return args


def check_logprobs_mode(llm, name: str) -> None:
    """The engine's own logprobs_mode, as it started (a vLLM without the setting, or one
    that changed its meaning, must not score labels silently wrong)."""
    mode = getattr(getattr(getattr(llm, "llm_engine", None), "model_config", None), "logprobs_mode", None)
    if getattr(mode, "value", mode) != LOGPROBS_MODE:
        raise XltError(
            f"model {name}: vLLM started with logprobs_mode {mode!r}, not {LOGPROBS_MODE}; label "
            "log-probabilities would not be the model's own"
        )


def item_waves(requests: list[Request]) -> list[list[int]]:
    """Request indices in waves of WAVE_ITEMS items (every prompt of an item in one wave)."""
    items = list(dict.fromkeys((request.lang, request.item_id) for request in requests))
    wave_of_item = {item: number // WAVE_ITEMS for number, item in enumerate(items)}
    waves: list[list[int]] = [[] for _ in range(-(-len(items) // WAVE_ITEMS))]
    for index, request in enumerate(requests):
        waves[wave_of_item[(request.lang, request.item_id)]].append(index)
    return waves


def sampling_args(max_new_tokens: int) -> dict:
    """Greedy decoding, as the transformers engine does."""
    return {"temperature": 0.0, "max_tokens": max_new_tokens, "skip_special_tokens": True}


def prompts_of(requests: list[Encoded]) -> list[dict]:
    """Token ids, not text: vLLM must see exactly the tokens the templates rendered."""
    return [{"prompt_token_ids": list(request.input_ids)} for request in requests]


def cut_at_answer(
    completion_prefix: str, token_ids: list[int], tokenizer, eos_ids: set[int]
) -> tuple[list[int], int, str]:
    """The continuation's token ids (the stop token left out), its token count and
    why it stops, where the transformers engine stops: the first end-of-sequence
    token, or the first token after which an answer is stated, else the budget."""
    for count in range(1, len(token_ids) + 1):
        if token_ids[count - 1] in eos_ids:
            return token_ids[: count - 1], count, "eos"
        if stated_answer(tokenizer, completion_prefix, token_ids[:count]):
            return token_ids[:count], count, "answer"
    return list(token_ids), len(token_ids), "budget"


def label_requests(context: list[int], labels: list[list[int]]) -> list[tuple[dict, dict]]:
    """(prompt, sampling arguments) of each label token: the context and the label's
    tokens before it, the token itself forced, its log-probability returned."""
    return [
        (
            {"prompt_token_ids": context + label[:position]},
            {"temperature": 0.0, "max_tokens": 1, "logprobs": 0, "allowed_token_ids": [label[position]]},
        )
        for label in labels
        for position in range(len(label))
    ]


def label_logprobs(outputs, labels: list[list[int]]) -> list[float]:
    """The summed log-probability of each label's tokens, from `label_requests`' outputs."""
    scores = []
    for label in labels:
        scores.append(float(sum(next(outputs).outputs[0].logprobs[0][token].logprob for token in label)))
    return scores


class VLLMBackend(Backend):
    def __init__(
        self,
        spec: ModelSpec,
        tokenizer,
        base_dir: str,
        adapter_dir: str | None,
        entry: dict,
        signature: dict | None = None,
        gpus: int = 0,
    ):
        """`signature`: what besides the requests decides the outputs, for the resume
        shards' fingerprints; `gpus`: the job's, which vLLM splits the model over. The
        engine starts at the first run, sized for its longest request."""
        from transformers import GenerationConfig

        self.name, self.spec, self.tokenizer = spec.name, spec, tokenizer
        self.base_dir, self.adapter_dir, self.settings, self.gpus = base_dir, adapter_dir, entry["inference"], gpus
        self.signature = signature or {}
        # vllm.LLM and its LoRARequest once the engine starts (vllm is not installed where xlt is type-checked).
        self.llm: Any = None
        self.lora: Any = None
        location, revision = serving_checkpoint(base_dir)
        self.eos_ids = stop_token_ids(
            GenerationConfig.from_pretrained(location, revision=revision or "main"), tokenizer
        )

    def _start(self, needed_len: int) -> None:
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        args = engine_args(
            self.spec,
            self.base_dir,
            self.settings,
            gpus=self.gpus,
            needed_len=needed_len,
            rank=lora_rank(self.adapter_dir),
        )
        logger.info(
            f"vLLM: {self.spec.name} from {args['model']}, tensor parallel "
            f"{args['tensor_parallel_size']}, max_model_len {args['max_model_len']}"
        )
        self.llm = LLM(**args)
        check_logprobs_mode(self.llm, self.name)
        self.lora = (
            LoRARequest(f"{self.spec.name}-ft", 1, str(self.adapter_dir)) if self.adapter_dir is not None else None
        )
        self.max_len = args["max_model_len"]

    def run(self, requests: list[Request], resume: Mapping[str, Path] | None = None) -> list[Generation]:
        """Every prompt's requests, wave by wave; `resume` as the transformers backend's
        (per prompt, the shard where its finished results are kept)."""
        encoded = encode_all(self.tokenizer, self.spec, requests)
        waves = item_waves(requests)
        wave_of = {index: number for number, wave in enumerate(waves) for index in wave}
        shards = PromptShards(
            requests, encoded, resume, {**self.signature, "wave_items": WAVE_ITEMS}, wave_of, is_generation
        )
        results = {index: Generation(**fields) for index, fields in shards.completed().items()}
        needed = model_len(encoded)
        for number, wave in enumerate(waves):
            missing = [index for index in wave if index not in results]
            if not missing:
                continue
            if self.llm is None:
                self._start(needed)
            elif needed > self.max_len:
                raise XltError(
                    f"model {self.name}: a request of {needed} tokens is longer than the running engine's "
                    f"max_model_len {self.max_len}"
                )
            done = self._wave([requests[index] for index in missing], [encoded[index] for index in missing])
            finished = dict(zip(missing, done))
            shards.record(number, {index: asdict(result) for index, result in finished.items()})
            results.update(finished)
        return [results[index] for index in range(len(requests))]

    def _wave(self, requests: list[Request], encoded: list[Encoded]) -> list[Generation]:
        from vllm import SamplingParams

        # (generated token ids, their count, why generation stopped) of each request
        continuations: list[tuple[list[int], int, str]] = [([], 0, "budget")] * len(encoded)
        # One call per prompt (token budget), in the requests' order: an item's later
        # prompt finds the passage, question and options it shares with the earlier one
        # in the prefix cache, where within one call the two could be scheduled together
        # and both computed.
        by_budget: dict[int, list[int]] = {}
        for index, request in enumerate(requests):
            if request.max_new_tokens > 0:
                by_budget.setdefault(request.max_new_tokens, []).append(index)
        for budget, generating in by_budget.items():
            outputs = self.llm.generate(
                prompts_of([encoded[i] for i in generating]),
                SamplingParams(**sampling_args(budget)),
                lora_request=self.lora,
            )
            for index, output in zip(generating, outputs):
                continuations[index] = cut_at_answer(
                    encoded[index].completion_prefix, list(output.outputs[0].token_ids), self.tokenizer, self.eos_ids
                )
        # (request, "prompt" or "forced", label requests) of the second call
        scoring: list[tuple[int, str, list[tuple[dict, dict]]]] = []
        for index, item in enumerate(encoded):
            if item.scores_prompt:
                scoring.append((index, "prompt", label_requests(item.input_ids, item.labels())))
            ids, _, reason = continuations[index]
            if item.forced_ids and reason != "answer":
                scoring.append((index, "forced", label_requests(item.input_ids + ids + item.forced_ids, item.labels())))
        scores: dict[tuple[int, str], list[float]] = {}
        if scoring:
            asked = [request for _, _, requests_ in scoring for request in requests_]
            outputs = iter(
                self.llm.generate(
                    [prompt for prompt, _ in asked],
                    [SamplingParams(**args) for _, args in asked],
                    lora_request=self.lora,
                )
            )
            for index, kind, _ in scoring:
                scores[index, kind] = label_logprobs(outputs, encoded[index].labels())
        return [
            Generation(
                self.tokenizer.decode(ids, skip_special_tokens=True),
                len(item.input_ids),
                count,
                reason,
                scores.get((index, "prompt")),
                scores.get((index, "forced")),
                [len(ids) for ids in item.labels()] if (index, "prompt") in scores else None,
            )
            for index, (item, (ids, count, reason)) in enumerate(zip(encoded, continuations))
        ]
