"""What a predict job asks of a model, its token ids, and what a backend answers.

One `Request` per item and prompt (two for the direct prompt with the harness's `loglik`
scoring), plus the direct prompt with its options rotated three times (the choice cell's
rotations), and the cloze prompt with the answer phrase alone before the same options
(the cloze cell's unconditional pass): the text to encode, how many tokens to generate,
which cells of the layout its result fills, and the prompt (`job`) whose settings decide
it. Encoding
turns it into an `Encoded` request: prompt token ids (the same way for training and
inference, `encode_prompt`), the token ids of the option labels to score after the
prompt, and the answer phrase a chain of thought that states no answer is given before
its labels are scored (the answer-extraction pass of zero-shot CoT, Kojima et al. 2022).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import pandas as pd

from ..errors import XltError
from ..paths import CHOICE_PROMPT, CLOZE_PROMPT
from ..prompts import (
    HARNESS_CHOICES,
    ROTATIONS,
    Prompt,
    Template,
    answer_completion,
    answer_phrase,
    cloze_continuation,
    harness_context,
    options_of,
    render,
    rotated,
)

# The option labels as the direct prompt shows them and fine-tuning trains them: " A".." D".
LABELS = tuple(answer_completion(choice) for choice in range(1, 5))


@dataclass(frozen=True)
class Request:
    """`cells`: the prompts whose files the result fills. A generated prompt's cell
    ("direct", "cot") reads the text; the choice cell (and the harness's direct cell)
    reads the label log-probabilities at the end of the prompt. `job`: the prompt of
    the config ("direct", "cot", "cloze") whose settings decide the result, and with
    whose outputs it is kept for resuming (inference/shards.py). A request that fills
    no cell is part of another's row: `rotation` (1-3) the direct prompt with its
    options rotated (prompts.rotated), whose labels the choice cell reads;
    `unconditional` the cloze options after the answer phrase alone. A cloze request
    scores its `continuations` (the options' texts) instead of the labels."""

    job: str
    item_id: str
    lang: str
    options: list[str]
    answer: int
    prompt: Prompt
    max_new_tokens: int
    cells: tuple[str, ...]
    harness: bool = False
    forced_answer: str | None = None
    rotation: int = 0
    continuations: tuple[str, ...] | None = None
    unconditional: bool = False

    @property
    def scores_labels(self) -> bool:
        return self.harness or CHOICE_PROMPT in self.cells or self.rotation > 0 or self.continuations is not None


@dataclass(frozen=True)
class Encoded:
    """`label_ids` are scored after the prompt where `scores_prompt`, and after a
    continuation that states no answer followed by `forced_ids` where those are set.
    Requests of one `item` (an item's prompts) go through the model's prompt pass
    together: their longest common token prefix once, then each one's own tokens
    (inference/engine.py)."""

    input_ids: list[int]
    completion_prefix: str
    label_ids: list[list[int]] | None
    scores_prompt: bool
    forced_ids: list[int] | None
    max_new_tokens: int = 0
    item: str | None = None

    def labels(self) -> list[list[int]]:
        """`label_ids`, of a request that scores them (after its prompt or a forced answer)."""
        if self.label_ids is None:
            raise ValueError("this request scores no labels: it has no label_ids")
        return self.label_ids


# The ways each prompt is scored (prompts.direct_scoring for direct).
SCORINGS = {"direct": ("generate", "loglik"), "cot": ("generate",), CLOZE_PROMPT: ("continuations",)}


def build_requests(
    items: pd.DataFrame, templates: dict[str, Template], prompt: str, scoring: str, max_new_tokens: int
) -> list[Request]:
    """The requests of one prompt. `direct` fills the direct and choice cells
    from one pass ("generate": the text, and the labels at the answer position) or, with
    `scoring` "loglik", scores the harness's prompt for the direct cell and the study's
    direct prompt for the choice cell; either way the choice cell's three rotations are
    requests of their own. `cot` carries the answer phrase of its forced pass. `cloze`
    scores the options' texts after the cloze prompt and after the answer phrase alone."""
    if prompt not in SCORINGS or scoring not in SCORINGS[prompt]:
        allowed = "; ".join(f"{name}: {', '.join(ways)}" for name, ways in SCORINGS.items())
        raise XltError(f"prompt {prompt!r} with scoring {scoring!r}: allowed are {allowed}")
    requests = []
    for item in items.to_dict("records"):
        template = templates[item["lang"]]
        common = {
            "job": prompt,
            "item_id": item["item_id"],
            "lang": item["lang"],
            "options": options_of(item),
            "answer": int(item["correct_answer_num"]),
        }
        rendered = render(item, template, prompt)
        if prompt == CLOZE_PROMPT:
            continuations = tuple(cloze_continuation(option) for option in options_of(item))
            requests.append(
                Request(**common, prompt=rendered, max_new_tokens=0, cells=(CLOZE_PROMPT,), continuations=continuations)
            )
            alone = Prompt("", answer_phrase(template))
            requests.append(
                Request(
                    **common, prompt=alone, max_new_tokens=0, cells=(), continuations=continuations, unconditional=True
                )
            )
            continue
        if prompt == "cot":
            requests.append(
                Request(
                    **common,
                    prompt=rendered,
                    max_new_tokens=max_new_tokens,
                    cells=("cot",),
                    forced_answer=f"\n{answer_phrase(template)}",
                )
            )
            continue
        if scoring == "generate":
            requests.append(
                Request(**common, prompt=rendered, max_new_tokens=max_new_tokens, cells=("direct", CHOICE_PROMPT))
            )
        else:
            requests.append(
                Request(
                    **common,
                    prompt=Prompt(harness_context(item), ""),
                    max_new_tokens=0,
                    cells=("direct",),
                    harness=True,
                )
            )
            requests.append(Request(**common, prompt=rendered, max_new_tokens=0, cells=(CHOICE_PROMPT,)))
        for rotation in range(1, ROTATIONS):
            requests.append(
                Request(
                    **common,
                    prompt=render(rotated(item, rotation), template, "direct"),
                    max_new_tokens=0,
                    cells=(),
                    rotation=rotation,
                )
            )
    return requests


def uses_chat_template(spec, tokenizer) -> bool:
    """Whether a model's prompts go through its tokenizer's chat template
    (`spec.chat_template`: auto, on or off)."""
    if spec.chat_template == "auto":
        return bool(getattr(tokenizer, "chat_template", None))
    if spec.chat_template == "on" and not getattr(tokenizer, "chat_template", None):
        raise XltError(f"model {spec.name}: chat_template is 'on' but its tokenizer has no chat template")
    return spec.chat_template == "on"


def encode_prompt(tokenizer, prompt: Prompt, chat: bool, chat_kwargs: dict | None = None) -> list[int]:
    """Token ids of a prompt up to and including its completion prefix.

    With a chat template the user text is a user turn and the completion prefix opens
    the assistant turn; the template brings its own special tokens. Without one, the
    prefix follows the text on a new line and the tokenizer adds its usual BOS.
    """
    if chat:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt.user}],
            tokenize=False,
            add_generation_prompt=True,
            **(chat_kwargs or {}),
        )
        return tokenizer(text + prompt.completion_prefix, add_special_tokens=False)["input_ids"]
    return tokenizer(f"{prompt.user}\n{prompt.completion_prefix}")["input_ids"]


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-evaluation-harness's `_encode_pair` for causal models: trailing spaces of the
    context move to the continuation, which is the tail of the tokenized whole."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer.encode(context + continuation)
    context_ids = tokenizer.encode(context)
    return context_ids, whole[len(context_ids) :]


def _pieces(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode(tokenizer, request: Request, chat: bool, chat_kwargs: dict | None = None) -> Encoded:
    item = f"{request.lang}/{request.item_id}"
    if request.harness:
        pairs = [encode_pair(tokenizer, request.prompt.user, choice) for choice in HARNESS_CHOICES]
        return Encoded(pairs[0][0], "", [ids for _, ids in pairs], True, None, request.max_new_tokens, item)
    if request.unconditional:
        # The answer phrase as plain text (the tokenizer's usual BOS, no chat turn), as
        # lighteval's unconditioned query; a pass of its own, sharing nothing with the
        # item's prompts (in their group it would cut their shared prefix to nothing).
        ids = tokenizer(request.prompt.completion_prefix)["input_ids"]
        assert request.continuations is not None, "an unconditional request scores the cloze options (build_requests)"
        return Encoded(
            ids,
            request.prompt.completion_prefix,
            [_pieces(tokenizer, text) for text in request.continuations],
            True,
            None,
            0,
            None,
        )
    scored = request.continuations or LABELS
    return Encoded(
        encode_prompt(tokenizer, request.prompt, chat, chat_kwargs),
        request.prompt.completion_prefix,
        [_pieces(tokenizer, text) for text in scored] if request.scores_labels or request.forced_answer else None,
        request.scores_labels,
        _pieces(tokenizer, request.forced_answer) if request.forced_answer else None,
        request.max_new_tokens,
        item,
    )


def encode_all(tokenizer, spec, requests: list[Request]) -> list[Encoded]:
    """Every request encoded for one model (its chat mode decided once)."""
    chat = uses_chat_template(spec, tokenizer)
    return [encode(tokenizer, request, chat, spec.chat_template_kwargs) for request in requests]


@dataclass
class Generation:
    """What a backend returns for one request: the generated text (the stop token
    left out), its token count and why it stopped (answer, eos, budget), the label
    log-probabilities after the prompt (where asked; a cloze request's are its
    options' continuations, `label_tokens` their token counts) and after the forced
    answer phrase (a continuation that states no answer)."""

    text: str
    n_prompt_tokens: int
    n_output_tokens: int
    stop_reason: str
    label_logprobs: list[float] | None = None
    forced_logprobs: list[float] | None = None
    label_tokens: list[int] | None = None


_GENERATION_FIELDS = {field.name for field in fields(Generation)}


def is_generation(stored: object) -> bool:
    """Whether a result read back from a shard has a Generation's fields and types."""
    if not (isinstance(stored, dict) and set(stored) == _GENERATION_FIELDS):
        return False
    counts = [stored[name] for name in ("n_prompt_tokens", "n_output_tokens")]
    scores = [stored[name] for name in ("label_logprobs", "forced_logprobs")]
    return (
        isinstance(stored["text"], str)
        and all(type(count) is int and count >= 0 for count in counts)
        and stored["stop_reason"] in ("answer", "eos", "budget")
        and all(
            score is None or (isinstance(score, list) and all(type(value) in (int, float) for value in score))
            for score in scores
        )
        and (
            stored["label_tokens"] is None
            or (
                isinstance(stored["label_tokens"], list)
                and all(type(count) is int and count > 0 for count in stored["label_tokens"])
            )
        )
    )
