"""The prediction backend interface, in the spirit of lm-evaluation-harness's `LM`: one
object per loaded model variant that turns a list of requests (inference/requests.py)
into one `Generation` per request (inference/requests.py): the text generated with the
study's stopping rule, and the log-probabilities of the option labels where a request
asks for them. Two implementations: the transformers engine (inference/hf.py) and vLLM
(inference/vllm.py), chosen by the model's `inference.backend` (inference/loader.py)."""

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
