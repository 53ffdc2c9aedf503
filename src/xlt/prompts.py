"""Prompts: Belebele's format (passage, question, four labelled options) and the
instruction of each prompting mode, with the text of each language read from
config/templates/<lang>.yaml. No prompt text lives in code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import XltError
from .extract import extract
from .yamlfile import read_yaml

LETTERS = ("A", "B", "C", "D")
TEMPLATE_FIELDS = ("passage", "question", "answer", "direct", "cot", "cot_start")


@dataclass(frozen=True)
class Template:
    """The words one language's prompt is made of: labels, the two instructions, and
    the words that open a chain of thought."""

    lang: str
    passage: str
    question: str
    answer: str
    direct: str
    cot: str
    cot_start: str


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: the user's text, and the text the model's answer starts with
    (the answer label for `direct`, the opening of the reasoning for `cot`)."""

    user: str
    completion_prefix: str


def template_path(templates_dir: str | Path, template: str) -> Path:
    return Path(templates_dir) / f"{template}.yaml"


def load_template(path: str | Path) -> Template:
    path = Path(path)
    fields = read_yaml(path, "prompt template")
    if not isinstance(fields, dict):
        raise XltError(f"{path}: expected a mapping with keys {', '.join(TEMPLATE_FIELDS)}")
    missing = [key for key in TEMPLATE_FIELDS if not isinstance(fields.get(key), str) or not fields[key].strip()]
    unknown = sorted(set(fields) - set(TEMPLATE_FIELDS))
    if missing:
        raise XltError(f"{path}: key {missing[0]} is missing or empty; a template needs {', '.join(TEMPLATE_FIELDS)}")
    if unknown:
        raise XltError(f"{path}: unknown key {unknown[0]}; allowed: {', '.join(TEMPLATE_FIELDS)}")
    template = Template(lang=path.stem, **{key: fields[key].strip() for key in TEMPLATE_FIELDS})
    # The model is prompted to answer after this label: an extractor that cannot read
    # it would score every output as unparsed.
    if extract(f"{template.answer}: B").rule != "phrase":
        raise XltError(
            f"{path}: answer label {template.answer!r} is not an answer phrase of the extractor; add it "
            "to ANSWER_WORDS in src/xlt/extract.py"
        )
    return template


def options_of(item: Mapping) -> list[str]:
    return [item[f"mc_answer{i}"] for i in range(1, 5)]


def render(item: Mapping, template: Template, prompt: str) -> Prompt:
    """One Belebele item as a prompt of mode `direct`, `cot` or `cloze`. The cloze
    prompt is the passage and the question, no options and no instruction, and the
    answer phrase opens the answer (lighteval's CF formulation): each option's text is
    then scored after it as `cloze_continuation` (docs/inference.md)."""
    if prompt not in ("direct", "cot", "cloze"):
        raise XltError(f"prompt mode {prompt!r} is not one of direct, cot, cloze")
    # External training sets may have questions without a passage (finetune.data)
    passage = f"{template.passage}: {item['flores_passage']}\n" if item["flores_passage"] else ""
    question = f"{passage}{template.question}: {item['question']}"
    if prompt == "cloze":
        return Prompt(user=question, completion_prefix=answer_phrase(template))
    option_lines = "\n".join(f"{letter}. {text}" for letter, text in zip(LETTERS, options_of(item)))
    instruction = template.direct if prompt == "direct" else template.cot
    prefix = answer_phrase(template) if prompt == "direct" else template.cot_start
    return Prompt(user=f"{question}\n{option_lines}\n{instruction}", completion_prefix=prefix)


def cloze_continuation(option: str) -> str:
    """The text scored for an option after the cloze prompt's answer phrase ("Answer:"):
    the option's text after one space, as lighteval scores its CF choices; its
    character count (the space included) is what `char` normalisation divides by."""
    return f" {option}"


ROTATIONS = 4


def rotated(item: Mapping, rotation: int) -> dict:
    """The item with its options shifted cyclically by `rotation` places: letter k
    (0-based) shows original option (k + rotation) mod 4, so over the four rotations
    each option sits under each letter once."""
    options = options_of(item)
    return {**item, **{f"mc_answer{k + 1}": options[(k + rotation) % ROTATIONS] for k in range(ROTATIONS)}}


def shown_option(letter: int, rotation: int) -> int:
    """The original option number (1-4) under `letter` (1-4) in a rotation."""
    return (letter - 1 + rotation) % ROTATIONS + 1


def answer_phrase(template: Template) -> str:
    """What an answer opens with in this language ("Answer:"): the direct prompt's
    completion prefix, and what a chain of thought without a stated answer is given
    before its forced answer is read."""
    return f"{template.answer}:"


def answer_completion(choice: int) -> str:
    """The training target after a direct prompt's answer label: ' B' for choice 2."""
    return f" {LETTERS[choice - 1]}"


def harness_context(item: Mapping) -> str:
    """lm-evaluation-harness's Belebele prompt (its task's `doc_to_text`), verbatim, so
    `loglik` scores can be compared with the harness item by item. It is the same in
    every language; the choices it scores are " A", " B", " C", " D"."""
    return (
        f"P: {item['flores_passage']}\nQ: {item['question'].strip()}\n"
        f"A: {item['mc_answer1']}\nB: {item['mc_answer2']}\nC: {item['mc_answer3']}\nD: {item['mc_answer4']}\nAnswer:"
    )


HARNESS_CHOICES = tuple(f" {letter}" for letter in LETTERS)
