"""The shipped parallel fixture and prompt templates: the study's default input."""

import json
import unicodedata
from collections import Counter

import pytest

from xlt.data import BELEBELE_FIELDS, DataSource, prepare_languages
from xlt.extract import extract_choice
from xlt.prompts import TEMPLATE_FIELDS, load_template

LANGS = ["arb_Arab", "heb_Hebr", "amh_Ethi", "mlt_Latn", "tur_Latn", "eng_Latn", "pes_Arab", "urd_Arab"]
SCRIPT_RANGES = {
    "Arab": [(0x0600, 0x06FF)],
    "Hebr": [(0x0590, 0x05FF)],
    "Ethi": [(0x1200, 0x137F)],
    "Latn": [(0x0041, 0x024F)],
}


def load(repo, lang):
    path = repo / "data" / "belebele_fixture" / f"{lang}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def letters_in_script(text, script):
    letters = [c for c in text if unicodedata.category(c).startswith("L")]
    inside = [c for c in letters if any(lo <= ord(c) <= hi for lo, hi in SCRIPT_RANGES[script])]
    return len(inside) / max(1, len(letters))


@pytest.mark.parametrize("lang", LANGS)
def test_fixture_rows_follow_the_belebele_schema(repo, lang):
    rows = load(repo, lang)
    assert len(rows) == 48
    for row in rows:
        assert list(row) == list(BELEBELE_FIELDS)
        assert row["dialect"] == lang
        options = [row[f"mc_answer{i}"] for i in range(1, 5)]
        assert len(set(options)) == 4 and all(o.strip() for o in options)
    assert Counter(row["correct_answer_num"] for row in rows) == {"1": 12, "2": 12, "3": 12, "4": 12}


@pytest.mark.parametrize("lang", LANGS)
def test_fixture_is_parallel_to_english_and_in_its_script(repo, lang):
    english, rows = load(repo, "eng_Latn"), load(repo, lang)
    for source, row in zip(english, rows):
        for key in ("link", "question_number", "correct_answer_num"):
            assert row[key] == source[key]
        if lang != "eng_Latn":
            assert row["flores_passage"] != source["flores_passage"]
        script = lang.split("_")[1]
        assert letters_in_script(row["flores_passage"] + row["question"], script) > 0.9, row["link"]


def test_persian_and_urdu_use_their_own_letters(repo):
    for lang in ("pes_Arab", "urd_Arab"):
        text = "".join(row["flores_passage"] + row["question"] for row in load(repo, lang))
        assert "\u064a" not in text and "\u0643" not in text  # Arabic yeh and kaf


def test_the_whole_fixture_prepares(repo):
    frames = prepare_languages(
        DataSource("fixture", fixture_dir=str(repo / "data" / "belebele_fixture")), LANGS, 0.34, 1234
    )
    for frame in frames.values():
        assert (frame["split"] == "test").sum() == 16 and (frame["split"] == "train").sum() == 32


@pytest.mark.parametrize("lang", LANGS)
def test_template_answers_are_read_back_by_the_extractor(repo, lang):
    template = load_template(repo / "config" / "templates" / f"{lang}.yaml")
    assert all(getattr(template, field) for field in TEMPLATE_FIELDS)
    assert extract_choice(f"{template.answer}: C") == 3
    assert extract_choice(f"{template.cot_start} ...\n{template.answer}: B.") == 2
    assert f"{template.answer}: X" in template.cot
    for letter in "ABCD":
        assert letter in template.direct and letter in template.cot
