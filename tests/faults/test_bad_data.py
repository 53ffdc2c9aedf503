"""A broken row stops prepare_data with the file, the row and the field named, and
writes nothing; encoding differences (byte-order mark, Windows line ends, decomposed
Unicode) are normalised: the prepared files are byte-identical to those of clean input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from belebele_rows import rows, write_jsonl
from faultlib import files_under

from xlt.errors import XltError
from xlt.settings import PrepareDataSettings
from xlt.stages import prepare_data

LANGS = ["arb_Arab", "heb_Hebr", "eng_Latn"]
FIELDS = (
    "link, question_number, flores_passage, question, mc_answer1, mc_answer2, mc_answer3, mc_answer4, "
    "correct_answer_num, dialect"
)


def _records(lang):
    return rows(lang, n_passages=6, questions_per_passage=2)


def _lines(records):
    return [json.dumps(record, ensure_ascii=False) for record in records]


def _set(row, field, value):
    def mutate(records):
        records[row - 1][field] = value
        return _lines(records)

    return mutate


def _drop(row, field):
    def mutate(records):
        del records[row - 1][field]
        return _lines(records)

    return mutate


def _drop_everywhere(field):
    def mutate(records):
        for record in records:
            del record[field]
        return _lines(records)

    return mutate


def _replace_line(row, text):
    def mutate(records):
        lines = _lines(records)
        lines[row - 1] = text
        return lines

    return mutate


def _lone_surrogate(records):
    records[1]["flores_passage"] += " \ud800"
    return [json.dumps(record) for record in records]  # written as the escape \ud800


def _same_options(records):
    records[1]["mc_answer3"] = " " + records[1]["mc_answer1"]
    return _lines(records)


def _options(first, third):
    def mutate(records):
        records[1]["mc_answer1"], records[1]["mc_answer3"] = first, third
        return _lines(records)

    return mutate


def _answers_shifted(records):
    records[4]["correct_answer_num"] = "3"
    return _lines(records)


# (what is done to heb_Hebr.jsonl, the message after "<heb_Hebr.jsonl>: ")
CASES = {
    "field missing in every row": (
        _drop_everywhere("dialect"),
        f"missing field(s) dialect; Belebele rows need {FIELDS}",
    ),
    "field missing in one row": (_drop(3, "question"), "row 3: field question is missing"),
    "null field": (_set(4, "link", None), "row 4: field link is missing"),
    "empty passage": (_set(2, "flores_passage", " \n "), "row 2: field flores_passage is empty"),
    "empty option": (_set(2, "mc_answer4", ""), "row 2: field mc_answer4 is empty"),
    "option that is not text": (_set(5, "mc_answer1", 7), "row 5: field mc_answer1 is 7; allowed: text"),
    "answer 5": (_set(2, "correct_answer_num", "5"), "row 2: field correct_answer_num is '5'; allowed: 1, 2, 3, 4"),
    "answer 0": (_set(3, "correct_answer_num", 0), "row 3: field correct_answer_num is 0; allowed: 1, 2, 3, 4"),
    "answer as a superscript digit": (
        _set(2, "correct_answer_num", "²"),
        "row 2: field correct_answer_num is '²'; allowed: 1, 2, 3, 4",
    ),
    "question number in Arabic-Indic digits": (
        _set(2, "question_number", "٢"),
        "row 2: field question_number is '٢'; allowed: a whole number from 1",
    ),
    "question number past int64": (
        _set(2, "question_number", 2**70),
        f"row 2: field question_number is {2**70}; allowed: a whole number from 1",
    ),
    "lone surrogate in a passage": (
        _lone_surrogate,
        "line 2: field flores_passage holds a lone surrogate U+D800 (an escaped half of a character), "
        "which is not text",
    ),
    "passage of only invisible characters": (
        _set(2, "flores_passage", "\u200b\u200d\u2060\u00ad"),
        "row 2: field flores_passage is empty (only invisible characters)",
    ),
    "two identical options": (
        _same_options,
        "row 2: fields mc_answer1 and mc_answer3 are the same text ('1', as read: invisible characters "
        "and kinds of space aside); the four options must differ",
    ),
    "two options that differ only in what cannot be seen": (
        _options("cat sat", "cat\u200b\u00a0sat"),
        "row 2: fields mc_answer1 and mc_answer3 are the same text ('cat\\u200b\\xa0sat', as read: "
        "invisible characters and kinds of space aside); the four options must differ",
    ),
    "answer as a letter": (
        _set(2, "correct_answer_num", "B"),
        "row 2: field correct_answer_num is 'B'; allowed: 1, 2, 3, 4",
    ),
    "question number that is not a number": (
        _set(6, "question_number", "two"),
        "row 6: field question_number is 'two'; allowed: a whole number from 1",
    ),
    "duplicate link and question number": (
        _set(4, "question_number", 1),
        "row 4: duplicate (link, question_number) = (https://example.invalid/001, 1), first in row 3",
    ),
    "line that is not JSON": (
        _replace_line(4, '{"link": "x",'),
        "line 4: not valid JSON (Expecting property name enclosed in double quotes at column 14)",
    ),
    "line nested too deeply": (
        _replace_line(4, '{"link": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        "line 4: not valid JSON (nested too deeply to read)",
    ),
    "line that is not an object": (
        _replace_line(2, "[1, 2, 3]"),
        "line 2: expected a JSON object with the Belebele fields, found list",
    ),
    "empty file": (lambda records: [], "no rows"),
    "item missing in one language": (
        lambda records: _lines(records[:-1]),
        "item https://example.invalid/005#2 of arb_Arab is missing in heb_Hebr (1 missing)",
    ),
    "item only in one language": (
        lambda records: _lines(records + rows("heb_Hebr", 7, 2)[-1:]),
        "item https://example.invalid/006#2 is not in arb_Arab (1 extra)",
    ),
    "correct answer differs between translations": (
        _answers_shifted,
        "item https://example.invalid/002#1: correct_answer_num is 3 in heb_Hebr but 2 in arb_Arab (1 "
        "differ); parallel items share their answer",
    ),
}


def _fixture(folder, hebrew_lines=None):
    for lang in LANGS:
        write_jsonl(folder / f"{lang}.jsonl", _records(lang))
    if hebrew_lines is not None:
        (folder / "heb_Hebr.jsonl").write_text("".join(line + "\n" for line in hebrew_lines), encoding="utf-8")
    return folder


def _data_config(fixture_dir):
    return {
        "source": "fixture",
        "fixture_dir": str(fixture_dir),
        "hub_id": "facebook/belebele",
        "test_fraction": 0.5,
        "seed": 1,
        "max_test_items": None,
        "max_train_items": None,
    }


def _outputs(folder):
    return [str(folder / f"{lang}.parquet") for lang in LANGS]


@pytest.mark.parametrize("case", CASES)
def test_bad_rows_stop_prepare_data_and_write_nothing(tmp_path, case):
    mutate, message = CASES[case]
    fixture = _fixture(tmp_path / "fixture", mutate(_records("heb_Hebr")))
    out = tmp_path / "results" / "data"

    with pytest.raises(XltError) as error:
        prepare_data(
            settings=PrepareDataSettings(data=_data_config(fixture), langs=LANGS, all_test=False), outputs=_outputs(out)
        )

    assert str(error.value) == f"{fixture / 'heb_Hebr.jsonl'}: {message}"
    assert files_under(tmp_path / "results") == []


def test_missing_fixture_file(tmp_path):
    fixture = _fixture(tmp_path / "fixture")
    (fixture / "eng_Latn.jsonl").unlink()
    with pytest.raises(XltError) as error:
        prepare_data(
            settings=PrepareDataSettings(data=_data_config(fixture), langs=LANGS, all_test=False),
            outputs=_outputs(tmp_path / "results" / "data"),
        )
    assert str(error.value) == f"{fixture / 'eng_Latn.jsonl'}: fixture file for language eng_Latn not found"
    assert files_under(tmp_path / "results") == []


def test_bytes_that_are_not_utf8(tmp_path):
    fixture = _fixture(tmp_path / "fixture")
    path = fixture / "heb_Hebr.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b"Passage", "Pässage".encode("latin-1"))
    path.write_bytes(b"".join(lines))
    with pytest.raises(XltError) as error:
        prepare_data(
            settings=PrepareDataSettings(data=_data_config(fixture), langs=LANGS, all_test=False),
            outputs=_outputs(tmp_path / "results" / "data"),
        )
    assert str(error.value) == f"{path}: line 3: not UTF-8 text (byte 0xe4); save the file as UTF-8"
    assert files_under(tmp_path / "results") == []


def test_bom_crlf_and_decomposed_unicode_are_normalised(tmp_path):
    clean, messy = tmp_path / "clean", tmp_path / "messy"
    for lang in LANGS:
        records = _records(lang)
        for record in records:
            record["question"] = "Caf\u00e9: " + record["question"]
            record["flores_passage"] = record["flores_passage"].replace(". ", ".\n", 1)
        write_jsonl(clean / f"{lang}.jsonl", records)
        for record in records:
            record["question"] = record["question"].replace("\u00e9", "e\u0301")  # é decomposed
            record["flores_passage"] = record["flores_passage"].replace("\n", "\r\n")
        messy.mkdir(exist_ok=True)
        (messy / f"{lang}.jsonl").write_bytes(("\ufeff" + "\r\n".join(_lines(records)) + "\r\n").encode("utf-8"))
    assert (clean / "eng_Latn.jsonl").read_bytes() != (messy / "eng_Latn.jsonl").read_bytes()

    prepare_data(
        settings=PrepareDataSettings(data=_data_config(clean), langs=LANGS, all_test=False),
        outputs=_outputs(tmp_path / "clean-out"),
    )
    prepare_data(
        settings=PrepareDataSettings(data=_data_config(messy), langs=LANGS, all_test=False),
        outputs=_outputs(tmp_path / "messy-out"),
    )

    for lang in LANGS:
        assert (tmp_path / "messy-out" / f"{lang}.parquet").read_bytes() == (
            tmp_path / "clean-out" / f"{lang}.parquet"
        ).read_bytes()


def test_hub_that_cannot_be_reached(tmp_path, monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'facebook/belebele' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    config = {**_data_config(tmp_path), "source": "hub"}
    with pytest.raises(XltError) as error:
        prepare_data(
            settings=PrepareDataSettings(data=config, langs=LANGS, all_test=False),
            outputs=_outputs(tmp_path / "results" / "data"),
        )
    assert (
        str(error.value)
        == "facebook/belebele[arb_Arab]: cannot be loaded: Couldn't reach 'facebook/belebele' on the Hub "
        "(LocalEntryNotFoundError)"
    )
    assert files_under(tmp_path / "results") == []


def test_line_separators_inside_json_strings_are_text(tmp_path):
    """U+2028, U+2029 and U+0085 may stand raw in a JSON string: they are not line ends
    of a JSON-lines file (str.splitlines() would split there)."""
    records = _records("heb_Hebr")
    records[0]["flores_passage"] += "\u2028second line\u0085third\u2029fourth"
    fixture = _fixture(tmp_path / "fixture", _lines(records))
    prepare_data(
        settings=PrepareDataSettings(data=_data_config(fixture), langs=LANGS, all_test=False),
        outputs=_outputs(tmp_path / "out"),
    )
    prepared = pd.read_parquet(tmp_path / "out" / "heb_Hebr.parquet")
    passages = set(prepared["flores_passage"])
    assert any(passage.endswith("\u2028second line\u0085third\u2029fourth") for passage in passages)
