"""Model outputs built to make a backtracking regular expression take exponential or
quadratic time: runs of what the answer extractor's patterns repeat (dots, ellipses,
spaces, punctuation, lead words, answer phrases, labels, one letter). Shared by
tests/faults/test_extract_adversarial.py and bench/extract_adversarial.py."""

from __future__ import annotations

SIZE = 100_000  # characters of each output

# name -> the unit repeated (after the prefix) up to SIZE characters
UNITS = {
    "dots": ".",
    "ellipses": "…",
    "dots and spaces": ". ",
    "spaces": " ",
    "line breaks": "\n",
    "one letter a": "a",
    "one letter B": "B",
    "Hebrew letter": "ב",
    "Hebrew prefixes": "ב-",
    "colons": ":",
    "dashes": "-",
    "brackets": "(",
    "answer phrase": "Answer: ",
    "answer phrase, no space": "answer",
    "answer and article": "Answer: A man ",
    "correct answer is": "the correct answer is ",
    "lead words": "option ",
    "labels with commas": "A, B, ",
    "labels with or": "B or ",
    "label lines": "A\n",
    "echoed options": "A. Paris\n",
    "Arabic phrase": "الإجابة هي ",
    "Arabic clitic phrase": "والإجابة",
    "Hebrew phrase": "התשובה היא ",
    "Turkish phrase": "doğru cevap ",
    "zero-width joiners": "\u200d",
    "digits": "3 ",
    "option text": "Paris ",
}
PREFIXES = ("", "Answer: ", "The answer is (")
OPTIONS = ["Paris", "Rome", "Paris Rome", "3"]


def adversarial_outputs(size: int = SIZE):
    """(name, text) pairs: each unit repeated to `size` characters after each prefix."""
    for name, unit in UNITS.items():
        for prefix in PREFIXES:
            body = unit * (max(1, size - len(prefix)) // len(unit))
            yield f"{prefix!r} + {name}", prefix + body
