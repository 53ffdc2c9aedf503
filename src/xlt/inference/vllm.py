"""The vLLM backend, for models too large for transformers' generation loop.

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
scored the same way: a continuation is a label of several tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..models import ModelSpec, resolve_checkpoint
from .requests import Encoded, Generation, Request, encode_all
from .stopping import stated_answer, stop_token_ids


def engine_args(spec: ModelSpec, base_dir: str, entry: dict, adapter_dir: str | None) -> dict:
    """Keyword arguments of `vllm.LLM` for one model (`entry`: its config); the LoRA
    rank vLLM must reserve is the adapter's own."""
    settings = entry["inference"]
    location, revision = resolve_checkpoint(base_dir)
    args = {
        "model": location,
        "revision": revision,
        "dtype": settings["dtype"],
        "tensor_parallel_size": settings["tensor_parallel_size"],
        "gpu_memory_utilization": settings["gpu_memory_utilization"],
        "enable_prefix_caching": True,
        "load_format": "safetensors",  # never fall back to pickled weights
        "trust_remote_code": spec.trust_remote_code,
        "seed": 0,
        "enable_lora": adapter_dir is not None,
    }
    if settings["max_model_len"] is not None:
        args["max_model_len"] = settings["max_model_len"]
    if adapter_dir is not None:
        args["max_lora_rank"] = json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))["r"]
    return args


def sampling_args(max_new_tokens: int) -> dict:
    """Greedy decoding, as the transformers engine does."""
    return {"temperature": 0.0, "max_tokens": max_new_tokens, "skip_special_tokens": True}


def prompts_of(requests: list[Encoded]) -> list[dict]:
    """Token ids, not text: vLLM must see exactly the tokens the templates rendered."""
    return [{"prompt_token_ids": list(request.input_ids)} for request in requests]


def cut_at_answer(completion_prefix: str, token_ids: list[int], tokenizer, eos_ids: set[int]) -> tuple[list[int], int, str]:
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
        ({"prompt_token_ids": context + label[:position]}, {"temperature": 0.0, "max_tokens": 1, "logprobs": 0, "allowed_token_ids": [label[position]]})
        for label in labels
        for position in range(len(label))
    ]


def label_logprobs(outputs, labels: list[list[int]]) -> list[float]:
    """The summed log-probability of each label's tokens, from `label_requests`' outputs."""
    scores = []
    for label in labels:
        scores.append(float(sum(next(outputs).outputs[0].logprobs[0][token].logprob for token in label)))
    return scores


class VLLMBackend:
    def __init__(self, spec: ModelSpec, tokenizer, base_dir: str, adapter_dir: str | None, entry: dict):
        from transformers import GenerationConfig
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        self.name, self.spec, self.tokenizer = spec.name, spec, tokenizer
        args = engine_args(spec, base_dir, entry, adapter_dir)
        self.llm = LLM(**args)
        self.lora = LoRARequest(f"{spec.name}-ft", 1, str(adapter_dir)) if adapter_dir is not None else None
        self.eos_ids = stop_token_ids(GenerationConfig.from_pretrained(args["model"], revision=args["revision"]), tokenizer)

    def run(self, requests: list[Request], resume=None) -> list[Generation]:
        from vllm import SamplingParams

        encoded = encode_all(self.tokenizer, self.spec, requests)
        continuations = [([], 0, "budget")] * len(encoded)
        # One call per prompt (token budget), in the requests' order: an item's later
        # prompt finds the passage, question and options it shares with the earlier one
        # in the prefix cache, where within one call the two could be scheduled together
        # and both computed.
        by_budget: dict[int, list[int]] = {}
        for index, request in enumerate(requests):
            if request.max_new_tokens > 0:
                by_budget.setdefault(request.max_new_tokens, []).append(index)
        for budget, generating in by_budget.items():
            outputs = self.llm.generate(prompts_of([encoded[i] for i in generating]), SamplingParams(**sampling_args(budget)), lora_request=self.lora)
            for index, output in zip(generating, outputs):
                continuations[index] = cut_at_answer(encoded[index].completion_prefix, list(output.outputs[0].token_ids), self.tokenizer, self.eos_ids)
        # (request, "prompt" or "forced", label requests) of the second call
        scoring: list[tuple[int, str, list[tuple[dict, dict]]]] = []
        for index, item in enumerate(encoded):
            if item.scores_prompt:
                scoring.append((index, "prompt", label_requests(item.input_ids, item.label_ids)))
            ids, _, reason = continuations[index]
            if item.forced_ids and reason != "answer":
                scoring.append((index, "forced", label_requests(item.input_ids + ids + item.forced_ids, item.label_ids)))
        scores: dict[tuple[int, str], list[float]] = {}
        if scoring:
            asked = [request for _, _, requests_ in scoring for request in requests_]
            outputs = iter(self.llm.generate([prompt for prompt, _ in asked], [SamplingParams(**args) for _, args in asked], lora_request=self.lora))
            for index, kind, _ in scoring:
                scores[index, kind] = label_logprobs(outputs, encoded[index].label_ids)
        return [
            Generation(
                self.tokenizer.decode(ids, skip_special_tokens=True),
                len(item.input_ids),
                count,
                reason,
                scores.get((index, "prompt")),
                scores.get((index, "forced")),
                [len(ids) for ids in item.label_ids] if (index, "prompt") in scores else None,
            )
            for index, (item, (ids, count, reason)) in enumerate(zip(encoded, continuations))
        ]
