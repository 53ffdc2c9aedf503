"""Inference: turning Belebele items into predictions with a model.

`generate` (the study's scoring: the model writes, the extractor reads), `loglik` (the
choice whose letter is most likely, as lm-evaluation-harness scores Belebele), and the
`vllm` backend for large models. Every path writes the same predictions schema.
"""

import hashlib
from pathlib import Path

from .engine import Request, answer_complete, build_requests, generate, plan_waves, predictions_frame

__all__ = ["Request", "answer_complete", "build_requests", "fingerprint", "generate", "plan_waves", "predictions_frame"]


def fingerprint() -> str:
    """Hash of the code that turns items into model outputs (this package and the
    prompts): a workflow param of predict, so a changed engine reruns inference, as a
    changed extractor reruns scoring. The extractor is left out on purpose: it decides
    when a row stops, but a change to it should not cost a rerun of every model."""
    package = Path(__file__).parent
    digest = hashlib.sha256()
    for source in [*sorted(package.glob("*.py")), package.parent / "prompts.py"]:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]
