"""Answer extraction on hostile model outputs. 100 kB outputs: every pattern the extractor runs
on model output is linear in its length, so a chain of thought that degenerates into
dots cannot hang predict or score (before, `"Answer: " + 40 dots` took 12 s and each
further dot doubled it). The outputs are read in a child process: a pattern that
backtracks exponentially never returns, and the child's generous limit turns that
hang into a failure (it is not a speed measurement: bench/extract_adversarial.py
times each output). Invisible characters between an answer phrase and its colon."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from adversarial import PREFIXES, UNITS

from xlt.extract import extract
from xlt.invisible import INVISIBLE

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
HANG = 300  # seconds: hundreds of times what the slowest output takes on a loaded machine


def _extract_in_child(prefixes, with_options: bool) -> dict[str, list]:
    code = (
        f"import json, sys; sys.path[:0] = [{str(SRC)!r}, {str(HERE)!r}]\n"
        "from adversarial import OPTIONS, adversarial_outputs\n"
        "from xlt.extract import extract\n"
        f"prefixes = {list(prefixes)!r}\n"
        "found = {}\n"
        "for name, text in adversarial_outputs():\n"
        "    if any(name.startswith(repr(p) + ' + ') for p in prefixes):\n"
        f"        result = extract(text, OPTIONS if {with_options} else None)\n"
        "        found[name] = [result.choice, result.rule]\n"
        "print(json.dumps(found))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _check(found: dict[str, list], prefix: str) -> None:
    assert len(found) == len(UNITS)
    # What a degenerate output states: nothing, except where its last words are an answer.
    expected = {name: [None, "none"] for name in UNITS}
    if prefix:
        expected |= {
            "labels with commas": [None, "ambiguous"],  # "A, B, A, B, ...": two answers
            "labels with or": [2, "phrase"],  # "B or B or ...": one
            "label lines": [1, "phrase"],
            "echoed options": [1, "phrase"],
            "digits": [3, "phrase"],
            "Hebrew prefixes": [2, "phrase"],  # the last "ב-" prefixes nothing: the label ב
        }
    else:
        expected |= {"label lines": [1, "label_line"], "echoed options": [1, "first_line"]}
    assert {name.split(" + ", 1)[1]: value for name, value in found.items()} == expected


def test_answer_phrase_then_100_kb_of_one_pattern_returns():
    _check(_extract_in_child(["Answer: "], with_options=False), "Answer: ")


@pytest.mark.slow
@pytest.mark.parametrize("with_options", [False, True])
def test_every_adversarial_output_returns(with_options):
    for prefix in PREFIXES:
        found = _extract_in_child([prefix], with_options)
        if not with_options:
            _check(found, prefix)
        else:
            assert len(found) == len(UNITS)


def test_an_ellipsis_still_leads_to_the_label():
    """Possessive runs read the same answers: an ellipsis or dots between phrase and label."""
    assert extract("Answer: … B").choice == 2
    assert extract("Answer:..... (C)").choice == 3
    assert extract("The answer is... option D.").choice == 4
    assert extract("Answer. B").choice is None  # a full stop ends the statement


def test_every_invisible_character_is_dropped():
    """All of Unicode's format characters (category Cf, as of Unicode 15: the list may
    name some that this Python's older tables leave unassigned), the grapheme joiner and the
    variation selectors."""
    format_characters = {chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf"}
    assert format_characters <= set(INVISIBLE)
    assert {unicodedata.category(c) for c in set(INVISIBLE) - format_characters} <= {"Cn", "Mn"}
    variation_selectors = [
        chr(c) for c in [*range(0x180B, 0x180E), 0x180F, *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)]
    ]
    assert all("VARIATION SELECTOR" in unicodedata.name(c) for c in variation_selectors)
    assert sorted(c for c in INVISIBLE if unicodedata.category(c) == "Mn") == sorted(["\u034f", *variation_selectors])


@pytest.mark.parametrize(
    "invisible",
    ["\u2060", "\u00ad", "\u034f", "\u180e", "\u200d", "\u2063", "\U000e0041", "\ufe0f", "\U000e0100", "\u180b"],
)
def test_an_invisible_character_before_the_colon_is_ignored(invisible):
    assert extract(f"Answer{invisible}: B").choice == 2
    assert extract(f"الإجابة{invisible}: ب").choice == 2
    assert extract(f"The correct{invisible} answer{invisible} is{invisible} C").choice == 3
