"""A model variant opened as the prediction backend its config names
(inference/backend.py). Apart from the interface so that the backends, which subclass
it, and the function that chooses among them import no module that imports them."""

from __future__ import annotations

import logging

from .backend import Backend

logger = logging.getLogger(__name__)


def open_backend(
    name: str, entry: dict, variant: str, base_dir: str, adapter_dir: str | None, gpus: int = 0
) -> Backend:
    """The model `name` (its config `entry`) as a backend: the prepared base in
    `base_dir`, with the LoRA adapter in `adapter_dir` for the fine-tuned variant,
    unmerged on both backends; `gpus`: the job's (vLLM's tensor parallelism)."""
    from .. import __version__
    from ..errors import XltError
    from ..fingerprint import stage_fingerprint
    from ..models import ModelSpec, load_model, load_tokenizer
    from .shards import directory_signature

    spec = ModelSpec.from_config(name, entry)
    settings = entry["inference"]
    tokenizer = load_tokenizer(base_dir, spec)
    signature = {
        "version": __version__,
        "engine": stage_fingerprint("predict"),
        "entry": entry,
        "variant": variant,
        "base": directory_signature(base_dir),
        "adapter": directory_signature(adapter_dir),
    }
    if settings["backend"] == "hf":
        import time

        from .kvcache import check_transformers

        check_transformers()
        started = time.monotonic()
        model = load_model(base_dir, spec, adapter_dir=adapter_dir, dtype=settings["dtype"])
        logger.info(f"loaded {name} ({variant}) on {model.device} in {time.monotonic() - started:.1f}s")
        from .hf import HFBackend

        return HFBackend(spec, tokenizer, model, settings["batch_size"], signature)
    if settings["backend"] == "vllm":
        from .vllm import VLLMBackend

        return VLLMBackend(spec, tokenizer, base_dir, adapter_dir, entry, signature, gpus=gpus)
    raise XltError(f"model {name}: inference.backend {settings['backend']!r} is not one of hf, vllm")
