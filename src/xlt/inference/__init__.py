"""Inference: turning Belebele items into predictions with a model.

`generate` (the study's scoring: the model writes, the extractor reads), `loglik` (the
choice whose letter is most likely, as lm-evaluation-harness scores Belebele), and the
`vllm` backend for large models. Every path writes the same predictions schema.
"""

from .engine import Request, answer_complete, build_requests, generate, plan_batches, predictions_frame

__all__ = ["Request", "answer_complete", "build_requests", "generate", "plan_batches", "predictions_frame"]
