"""Inference: turning Belebele items into predictions with a model.

`requests` (what a job asks: prompts, label scoring, forced answers; and the
`Generation` a backend answers), `backend` (the interface every backend implements),
`loader` (`open_backend`: the backend a model's config names), `hf` and `engine` (the
transformers backend and its decoding
loop), `vllm` (the vLLM backend for large models), `stopping` (when a continuation is
done, for every backend), `forward` (forward passes over a KV cache), `kvcache` (the
one place that touches transformers' private cache classes), `shards`
(resumable jobs) and `predictions` (the predictions contract, the same from every
backend).
"""
