"""Inference: turning Belebele items into predictions with a model.

`requests` (what a job asks: prompts, label scoring, forced answers), `backend` (the
interface every backend implements, and `open_backend`), `hf` and `engine` (the
transformers backend and its decoding loop), `vllm` (the vLLM backend for large
models), `forward` (forward passes over a KV cache), `shards` (resumable jobs) and
`predictions` (the predictions contract, the same from every backend).
"""

import hashlib
from pathlib import Path


def fingerprint() -> str:
    """Hash of the code that turns items into model outputs (this package, the
    batching helpers and the prompts): a workflow param of predict, so a changed engine
    reruns inference, as a changed extractor reruns scoring. The extractor is left out
    on purpose: it decides when a row stops, but a change to it should not cost a
    rerun of every model."""
    package = Path(__file__).parent
    digest = hashlib.sha256()
    for source in [*sorted(package.glob("*.py")), package.parent / "batching.py", package.parent / "prompts.py"]:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]
