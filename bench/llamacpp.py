"""llama.cpp on the GGUF file prepare_model converts, for bench/inference.py: greedy
continuations of the engine's own prompt token ids (chat template applied by xlt's
encode, so the prompts are the engine's to the token), through llama-cpp-python's
low-level API, each sequence stopping where the engine's row would (an end-of-sequence
token, a stated answer, its token budget). `n_parallel` sequences decode together in
one `llama_batch`, one sequence id each, as llama.cpp's `batched` example does: the
high-level `Llama` class decodes one sequence only. With `n_parallel` 1 it is the
one-sequence-at-a-time loop.

llama.cpp runs the GGUF's own quantised weights (SmolLM2-135M: Q4_1); the engine runs
them de-quantised to float32, so scores differ a little and greedy paths can part.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

INSTALL = (
    "llama.cpp comparison: llama_cpp does not import; pip install llama-cpp-python (it builds from source, "
    "minutes; docs/inference.md, 'Benchmark against llama.cpp')"
)
# Tokens one llama_decode call takes (llama.cpp's default n_batch), and one physical pass.
N_BATCH = 2048
N_UBATCH = 512


def importable() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except (ImportError, OSError):  # OSError: the package is there, its shared library is not
        return False
    return True


@dataclass(frozen=True)
class Entry:
    """One token of a llama_batch: its sequence, its position there, its id, and whether
    its logits are read after the pass."""

    seq: int
    position: int
    token: int
    logits: bool


def prompt_entries(prompts: list[list[int]], n_batch: int) -> list[list[Entry]]:
    """Prompt i as sequence i from position 0, all prompts' tokens cut into batches of at
    most `n_batch`; logits are read at each prompt's last token only (they give its
    first generated token and its labels' scores)."""
    entries = [
        Entry(seq, position, token, position == len(ids) - 1)
        for seq, ids in enumerate(prompts)
        for position, token in enumerate(ids)
    ]
    return [entries[start : start + n_batch] for start in range(0, len(entries), n_batch)]


def label_logprobs(logits: np.ndarray, labels: list[list[int]]) -> list[float]:
    """Log-probabilities of one-token labels after the position whose `logits` these are
    (the engine reads a label's first token from the same logits, then the rest)."""
    if any(len(ids) != 1 for ids in labels):
        raise ValueError(f"labels {labels}: the llama.cpp comparison scores one-token labels only")
    shifted = logits.astype(np.float64) - logits.max()
    log_total = np.log(np.exp(shifted).sum())
    return [float(shifted[ids[0]] - log_total) for ids in labels]


@dataclass
class Continuation:
    """A sequence as decoding leaves it: its tokens (the stop token included, as the
    engine counts them), why it stopped, and its labels' scores after the prompt."""

    tokens: list[int] = field(default_factory=list)
    stop_reason: str = "budget"
    label_logprobs: list[float] | None = None


def stop_reason(tokens: list[int], budget: int, eos_ids: set[int], answered: Callable[[list[int]], bool]) -> str | None:
    """The engine's rule (engine.decode) for a row whose newest token is tokens[-1]:
    None while it goes on."""
    if tokens[-1] in eos_ids:
        return "eos"
    if answered(tokens):
        return "answer"
    return "budget" if len(tokens) >= budget else None


class LlamaCpp:
    """A GGUF model loaded by llama.cpp (CPU), run with `threads` threads."""

    def __init__(self, gguf: Path, threads: int):
        import llama_cpp

        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # its load log goes to stderr otherwise
        llama_cpp.llama_backend_init()
        self.model = llama_cpp.llama_model_load_from_file(str(gguf).encode(), llama_cpp.llama_model_default_params())
        if not self.model:
            raise RuntimeError(f"{gguf}: llama.cpp could not load this GGUF file")
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.model))
        self.threads = threads
        described = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(self.model, described, len(described))
        # architecture, size and weight type as llama.cpp names them ("llama 135M Q4_1 - Medium")
        self.description = described.value.decode()
        self.version = llama_cpp.__version__

    def close(self) -> None:
        import llama_cpp

        llama_cpp.llama_model_free(self.model)


class Session:
    """A llama.cpp context for `n_parallel` sequences of up to `per_sequence` tokens
    each (prompt and continuation), with a batch of N_BATCH tokens to fill."""

    def __init__(self, llama: LlamaCpp, n_parallel: int, per_sequence: int):
        import llama_cpp

        params = llama_cpp.llama_context_default_params()
        # llama.cpp pads a context to 256 cells and splits it evenly among the sequences:
        # padded here, every sequence keeps at least `per_sequence`
        params.n_ctx = n_parallel * -(-per_sequence // 256) * 256
        params.n_batch, params.n_ubatch = N_BATCH, N_UBATCH
        params.n_seq_max = n_parallel
        # a KV stream per sequence: attention reads only its own cells (a unified cache
        # would mask the other sequences' cells out at every step)
        params.kv_unified = False
        params.n_threads = params.n_threads_batch = llama.threads
        self.ctx = llama_cpp.llama_init_from_model(llama.model, params)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp: no context for {n_parallel} sequences of {per_sequence} tokens")
        self.batch = llama_cpp.llama_batch_init(max(N_BATCH, n_parallel), 0, 1)
        self.llama, self.n_parallel = llama, n_parallel

    def close(self) -> None:
        import llama_cpp

        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)

    def decode(self, entries: list[Entry]) -> dict[int, np.ndarray]:
        """One llama_decode over `entries`: the logits read, by sequence."""
        import llama_cpp

        batch = self.batch
        batch.n_tokens = len(entries)
        for slot, entry in enumerate(entries):
            batch.token[slot], batch.pos[slot] = entry.token, entry.position
            batch.n_seq_id[slot], batch.seq_id[slot][0] = 1, entry.seq
            batch.logits[slot] = entry.logits
        status = llama_cpp.llama_decode(self.ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama.cpp: llama_decode returned {status} for a batch of {len(entries)} tokens")
        return {
            entry.seq: np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(self.ctx, slot), shape=(self.llama.n_vocab,)
            ).copy()
            for slot, entry in enumerate(entries)
            if entry.logits
        }

    def generate(
        self, requests: list, eos_ids: set[int], finished: Callable[[int, list[int]], bool]
    ) -> list[Continuation]:
        """A Continuation per request (xlt's `Encoded`: input_ids, max_new_tokens,
        label_ids where scores_prompt), `n_parallel` requests at a time, each wave
        decoded until its last sequence stops. `finished(request, tokens)`: whether the
        tokens state an answer (the engine's stopping test)."""
        results = [Continuation() for _ in requests]
        for start in range(0, len(requests), self.n_parallel):
            self._wave(
                requests, list(range(start, min(start + self.n_parallel, len(requests)))), results, eos_ids, finished
            )
        return results

    def clear(self) -> None:
        """Forget every sequence (the KV cache's cells)."""
        import llama_cpp

        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.ctx), True)

    def _wave(self, requests, wave: list[int], results: list[Continuation], eos_ids, finished) -> None:
        self.clear()
        logits: dict[int, np.ndarray] = {}
        for entries in prompt_entries([requests[index].input_ids for index in wave], N_BATCH):
            logits.update(self.decode(entries))
        for seq, index in enumerate(wave):
            if requests[index].scores_prompt and requests[index].label_ids:
                results[index].label_logprobs = label_logprobs(logits[seq], requests[index].label_ids)
        active = [seq for seq, index in enumerate(wave) if requests[index].max_new_tokens > 0]
        while active:
            feed = []
            for seq in active:
                index = wave[seq]
                result = results[index]
                result.tokens.append(int(np.argmax(logits[seq])))
                reason = stop_reason(result.tokens, requests[index].max_new_tokens, eos_ids, partial(finished, index))
                if reason is None:
                    position = len(requests[index].input_ids) + len(result.tokens) - 1
                    feed.append(Entry(seq, position, result.tokens[-1], True))
                else:
                    result.stop_reason = reason
            if feed:
                logits = self.decode(feed)
            active = [entry.seq for entry in feed]
