"""When a continuation is done: the study's stopping rule, one for every backend.

The transformers engine applies it at each decoding step; vLLM, which cannot stop on a
test of the text, cuts its outputs afterwards where the engine would have stopped.
"""

from __future__ import annotations

from ..extract import extract


def answer_complete(text: str) -> bool:
    """True once the text states an answer after an answer phrase and something (a
    period, a line end) has closed the label, so " B" is not cut from " Because". A
    token can end inside a character's UTF-8 bytes, which decode to U+FFFD until the
    next token completes them: that half-written character closes nothing (SmolLM2 wrote
    "התשובה: ב" and then the bytes of "בסתיו", autumn, not the letter ב)."""
    return bool(text) and not text[-1].isalnum() and text[-1] != "\ufffd" and extract(text).rule == "phrase"


def stated_answer(tokenizer, completion_prefix: str, ids: list[int]) -> bool:
    """`answer_complete` on the prefix and the generated tokens `ids`. Decoding the
    whole continuation at every step is quadratic in its length; the newest token
    alone shows whether the text can have closed a label (it must end in something
    other than a letter or digit), so only then is the whole text decoded."""
    newest = tokenizer.decode(ids[-1:], skip_special_tokens=True)
    if newest and newest[-1].isalnum():
        return False
    return answer_complete(completion_prefix + tokenizer.decode(ids, skip_special_tokens=True))


def stop_token_ids(generation_config, tokenizer) -> set[int]:
    """End-of-sequence ids of the tokenizer and of the model's generation config (chat
    models often end a turn with a token of their own)."""
    configured = getattr(generation_config, "eos_token_id", None)
    candidates = [*(configured if isinstance(configured, list) else [configured]), tokenizer.eos_token_id]
    return {token for token in candidates if token is not None}
