"""The prediction backend interface, in the spirit of lm-evaluation-harness's `LM`: one
object per loaded model variant that turns a list of requests (inference/requests.py)
into one `Generation` per request (inference/requests.py): the text generated with the
study's stopping rule, and the log-probabilities of the option labels where a request
asks for them. Two implementations: the transformers engine (inference/hf.py) and vLLM
(inference/vllm.py), chosen by the model's `inference.backend`."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from pathlib import Path

from .requests import Generation, Request


class Backend(abc.ABC):
    """One loaded model variant that answers prediction requests. Both implementations
    (HFBackend, VLLMBackend) take the same arguments and honour `resume` alike."""

    #: The model's name (a key of the config's models), for error messages.
    name: str

    @abc.abstractmethod
    def run(self, requests: list[Request], resume: Mapping[str, Path] | None = None) -> list[Generation]:
        """One `Generation` per request, in the requests' order.

        `requests`: every prompt's requests of one job (inference/requests.py), which
        may share their prompt pass or prefix cache. `resume`: per prompt (a request's
        `job`), the shard file (inference/shards.py) where its finished waves are kept;
        a stored result is read back only for the request its fingerprint names, so a
        killed job continues where it stopped and a job whose other prompt changed
        reads this prompt's results back. None keeps nothing: every request is
        computed."""


def open_backend(name: str, entry: dict, variant: str, base_dir: str, adapter_dir: str | None, gpus: int = 0, log=print) -> Backend:
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

        from .engine import check_transformers

        check_transformers()
        started = time.monotonic()
        model = load_model(base_dir, spec, adapter_dir=adapter_dir, dtype=settings["dtype"])
        log(f"loaded {name} ({variant}) on {model.device} in {time.monotonic() - started:.1f}s")
        from .hf import HFBackend

        return HFBackend(spec, tokenizer, model, settings["batch_size"], signature, log)
    if settings["backend"] == "vllm":
        from .vllm import VLLMBackend

        return VLLMBackend(spec, tokenizer, base_dir, adapter_dir, entry, signature, gpus=gpus, log=log)
    raise XltError(f"model {name}: inference.backend {settings['backend']!r} is not one of hf, vllm")
