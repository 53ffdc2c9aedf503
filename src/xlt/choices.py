"""Choices read from log-probabilities rather than from text: the cloze cell's option
scores (their `raw_output`, and the option chosen under a normalisation) and the choice
cell's option rotations (the option chosen in each rotation, and the debiased choice).
Both the predict stage and `xlt score` read them here, so a change of
`prompts.cloze_normalisation` rescores a tree without a model. A NaN never wins."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from .errors import XltError
from .prompts import ROTATIONS, shown_option

# How option log-probabilities are compared (docs/inference.md): per character of the
# scored continuation (lighteval's LogProbCharNorm), per token, as pointwise mutual
# information (minus the same continuation's log-probability after the answer phrase
# alone), or summed as they are.
NORMALISATIONS = ("char", "token", "pmi", "none")
DEFAULT_NORMALISATION = "char"
_FIELDS = ("logprob", "tokens", "chars", "unconditional_logprob")


@dataclass(frozen=True)
class OptionScore:
    """One option's continuation: its summed log-probability after the cloze prompt,
    its token and character counts, and its summed log-probability after the answer
    phrase alone."""

    logprob: float
    tokens: int
    chars: int
    unconditional_logprob: float


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def cloze_raw(options: list[OptionScore]) -> str:
    """The cloze cell's `raw_output`: a JSON list of the four options' scores (a NaN
    log-probability as null, JSON having no NaN)."""
    return json.dumps(
        [
            {
                "logprob": _number(o.logprob),
                "tokens": o.tokens,
                "chars": o.chars,
                "unconditional_logprob": _number(o.unconditional_logprob),
            }
            for o in options
        ]
    )


def read_cloze(raw: str) -> list[OptionScore]:
    """A cloze `raw_output` back as option scores, or a one-line reason it is not one."""
    try:
        options = json.loads(raw)
    except (TypeError, ValueError):
        raise XltError(f"not the cloze cell's JSON list of 4 option scores ({str(raw)[:40]!r}...)") from None
    if not (
        isinstance(options, list)
        and len(options) == ROTATIONS
        and all(isinstance(o, dict) and set(o) == set(_FIELDS) for o in options)
    ):
        raise XltError(f"not a JSON list of 4 objects with the keys {', '.join(_FIELDS)}")
    scores = []
    for number, option in enumerate(options, 1):
        counts, logprobs = (option["tokens"], option["chars"]), (option["logprob"], option["unconditional_logprob"])
        if not all(type(count) is int and count > 0 for count in counts):
            raise XltError(
                f"option {number}: tokens and chars must be whole numbers from 1, not {counts[0]!r} and {counts[1]!r}"
            )
        if not all(value is None or type(value) in (int, float) for value in logprobs):
            raise XltError(f"option {number}: logprob and unconditional_logprob must be numbers or null")
        logprob, unconditional = (math.nan if value is None else float(value) for value in logprobs)
        scores.append(
            OptionScore(logprob=logprob, tokens=counts[0], chars=counts[1], unconditional_logprob=unconditional)
        )
    return scores


def normalised(option: OptionScore, normalisation: str) -> float:
    if normalisation == "char":
        return option.logprob / option.chars
    if normalisation == "token":
        return option.logprob / option.tokens
    if normalisation == "pmi":
        return option.logprob - option.unconditional_logprob
    if normalisation == "none":
        return option.logprob
    raise XltError(f"prompts.cloze_normalisation {normalisation!r} is not one of {', '.join(NORMALISATIONS)}")


def cloze_choice(options: list[OptionScore], normalisation: str) -> tuple[int | None, str | None]:
    """The option (1-4) with the largest normalised score, and None; or None and why
    no option can be chosen (a score is NaN: a NaN never wins, and no other option is
    known to beat it)."""
    values = [normalised(option, normalisation) for option in options]
    lost = [number for number, value in enumerate(values, 1) if math.isnan(value)]
    if lost:
        return None, f"option {lost[0]}'s {normalisation}-normalised log-probability is NaN"
    return max(range(len(values)), key=values.__getitem__) + 1, None


def likeliest_label(logprobs: list[float], where: str) -> int:
    """The label (1-4) of the largest log-probability; a NaN among them is an error
    naming `where` (max() would keep whichever came first, a NaN or not)."""
    if any(math.isnan(value) for value in logprobs):
        raise XltError(
            f"{where}: a label log-probability is NaN ({logprobs}); a NaN never counts as the likeliest "
            "label: check the weights and inference.dtype"
        )
    return max(range(len(logprobs)), key=logprobs.__getitem__) + 1


def rotation_choices(rotations: list[list[float]], where: str) -> list[int]:
    """The original option (1-4) chosen in each rotation (`rotations[r]`: the label
    log-probabilities A-D with the options rotated by r, prompts.rotated)."""
    return [shown_option(likeliest_label(logprobs, where), rotation) for rotation, logprobs in enumerate(rotations)]


def debiased_choice(rotations: list[list[float]]) -> int:
    """The original option with the highest mean label log-probability over the
    rotations: each option is scored once under every letter, so a prior for one
    letter adds the same to every option and drops out of the comparison."""
    means = [
        sum(logprobs[(option - rotation) % ROTATIONS] for rotation, logprobs in enumerate(rotations)) / len(rotations)
        for option in range(ROTATIONS)
    ]
    return max(range(ROTATIONS), key=means.__getitem__) + 1
