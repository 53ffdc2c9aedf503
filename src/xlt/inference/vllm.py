"""The vLLM backend, for models too large for transformers' generation loop.

Same requests (token ids rendered by the same templates) and the same output schema as
the transformers engine. The adapter is served by vLLM's LoRA support instead of being
merged, and the shared instruction text of every prompt is reused by prefix caching.
vLLM cannot stop on our answer test, so each output is cut afterwards where the
transformers engine would have stopped (`cut_at_answer`).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..models import ModelSpec, resolve_checkpoint
from .engine import Request, stated_answer, stop_token_ids


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


def prompts_of(requests: list[Request]) -> list[dict]:
    """Token ids, not text: vLLM must see exactly the tokens the templates rendered."""
    return [{"prompt_token_ids": list(request.input_ids)} for request in requests]


def cut_at_answer(completion_prefix: str, token_ids: list[int], tokenizer, eos_ids: set[int]) -> tuple[str, int]:
    """The generated text and token count up to where the transformers engine stops:
    the first end-of-sequence token, or the first token after which an answer is
    stated."""
    for count in range(1, len(token_ids) + 1):
        if token_ids[count - 1] in eos_ids:
            return tokenizer.decode(token_ids[: count - 1], skip_special_tokens=True), count
        if stated_answer(tokenizer, completion_prefix, token_ids[:count]):
            return tokenizer.decode(token_ids[:count], skip_special_tokens=True), count
    return tokenizer.decode(token_ids, skip_special_tokens=True), len(token_ids)


def generate_vllm(
    spec: ModelSpec, base_dir: str, adapter_dir: str | None, entry: dict, tokenizer, requests: list[Request], max_new_tokens: int
) -> list[tuple[str, int]]:
    from transformers import GenerationConfig
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    args = engine_args(spec, base_dir, entry, adapter_dir)
    llm = LLM(**args)
    lora = LoRARequest(f"{spec.name}-ft", 1, str(adapter_dir)) if adapter_dir is not None else None
    outputs = llm.generate(prompts_of(requests), SamplingParams(**sampling_args(max_new_tokens)), lora_request=lora)
    eos_ids = stop_token_ids(GenerationConfig.from_pretrained(args["model"], revision=args["revision"]), tokenizer)
    return [cut_at_answer(request.completion_prefix, list(output.outputs[0].token_ids), tokenizer, eos_ids) for request, output in zip(requests, outputs)]
