"""The prediction backend interface, in the spirit of lm-evaluation-harness's `LM`: one
object per loaded model variant that turns a list of requests (inference/requests.py)
into one `Generation` per request (inference/requests.py): the text generated with the
study's stopping rule, and the log-probabilities of the option labels where a request
asks for them. Two implementations: the transformers engine (inference/hf.py) and vLLM
(inference/vllm.py), chosen by the model's `inference.backend`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from .requests import Generation, Request

logger = logging.getLogger(__name__)


class Backend(Protocol):
    name: str

    def run(self, requests: list[Request], resume: Path | None = None) -> list[Generation]:
        """One result per request, in order. `resume`: where finished waves are kept,
        so a killed job continues where it stopped (backends that cannot resume
        ignore it)."""
        ...


def open_backend(name: str, entry: dict, variant: str, base_dir: str, adapter_dir: str | None, gpus: int = 0) -> Backend:
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
