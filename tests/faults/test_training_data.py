"""Training data checked as strictly as the test data (issue 24): external rows with
options a reader cannot tell apart, options of invisible characters only, or repeated
rows stop as Belebele rows do; repeated rows never count when the sources are
equalised; and training rows that are test items (by passage text, or by question and
options) stop unless allowed, and are then named in the log and provenance.json."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest
from faultlib import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from xlt.config import validate_config
from xlt.data import DataSource, prepare_languages
from xlt.errors import XltError
from xlt.provenance import provenance_record
from xlt.report import provenance_lines
from xlt.settings import PrepareTrainingSettings
from xlt.stages import prepare_training
from xlt.trainsets import TrainingSet, map_fields

BELEBELE_FIELDS = {
    "passage": "flores_passage",
    "question": "question",
    "options": ["mc_answer1", "mc_answer2", "mc_answer3", "mc_answer4"],
}
RACE_LIKE = REPO / "data" / "race_like" / "arb_Arab.jsonl"
RACE_FIELDS = {"passage": "article", "question": "question", "options": "options", "answer": "answer"}


@pytest.fixture(scope="module")
def test_items(tmp_path_factory) -> list[str]:
    """Every fixture item of two languages as test items (what external training data makes)."""
    root = tmp_path_factory.mktemp("data")
    frames = prepare_languages(
        DataSource("fixture", str(REPO / "data" / "belebele_fixture")),
        ["arb_Arab", "heb_Hebr"],
        test_fraction=0,
        seed=0,
    )
    paths = []
    for lang, frame in frames.items():
        frame.assign(lang=lang).to_parquet(root / f"{lang}.parquet")
        paths.append(str(root / f"{lang}.parquet"))
    return paths


def _finetune(path, fields, answer_as="index", **flags) -> dict:
    entry = {"path": str(path), "fields": fields, "answer_as": answer_as, "index_base": 1}
    return validate_config(
        {
            "data": {"fixture_dir": str(REPO / "data" / "belebele_fixture")},
            "languages": {
                "arb_Arab": {"family": "Semitic", "script": "Arab"},
                "heb_Hebr": {"family": "Semitic", "script": "Hebr"},
                "eng_Latn": {"family": "x", "script": "Latn"},
            },
            "source_language": "arb_Arab",
            "related_families": ["Semitic"],
            "models": {"m": {"id": "org/m"}},
            "finetune": {"data": {"arb_Arab": entry}, **flags},
        }
    )["finetune"]


def _write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")


def _run(finetune, test_items, tmp_path, sources=("arb_Arab",)):
    outputs = [str(tmp_path / "train" / f"{lang}.parquet") for lang in sources]
    settings = PrepareTrainingSettings(finetune=finetune, sources=list(sources), seed=0)
    prepare_training(
        settings=settings,
        data_files={},
        outputs=outputs,
        test_files=test_items,
        checks_out=str(tmp_path / "train" / "checks.json"),
    )
    return [pd.read_parquet(path) for path in outputs], json.loads(
        (tmp_path / "train" / "checks.json").read_text(encoding="utf-8")
    )


def test_external_data_holding_the_test_items_stops_or_is_named(test_items, tmp_path, caplog):
    """Finding 5: `finetune.data` holding the Belebele test items themselves trained on
    48 of 48 test items without a word, though the README promises no test passage is
    trained on. Now prepare_training stops naming the first; allowed, the log, the
    checks file, provenance.json and the report name them."""
    caplog.set_level(logging.INFO, logger="xlt")
    rows = pd.read_parquet(test_items[0]).drop(columns=["item_id", "split", "lang"])
    path = tmp_path / "belebele_as_training.jsonl"
    _write_jsonl(path, rows.to_dict("records"))
    finetune = _finetune(path, {**BELEBELE_FIELDS, "answer": "correct_answer_num"})
    with pytest.raises(XltError) as caught:
        _run(finetune, test_items, tmp_path)
    first = rows.iloc[0]
    assert str(caught.value) == (
        f"{path}: 48 of 48 training rows are test items: row 1 has the passage of test item "
        f"{first['link']}#1 (arb_Arab); fine-tuning on the test items "
        "measures memory, not transfer. Remove them, or allow it (finetune.allow_test_overlap: true) and "
        "the log and results/provenance.json name them"
    )
    assert not (tmp_path / "train").exists()
    finetune["allow_test_overlap"] = True
    (trained,), checks = _run(finetune, test_items, tmp_path)
    assert len(trained) == 48 and len(checks["arb_Arab"]["test_items"]) == 48
    assert checks["arb_Arab"]["test_items"][0] == {
        "row": "arb_Arab:train:1",
        "test_item": f"{first['link']}#1",
        "lang": "arb_Arab",
        "by": "passage",
    }
    assert (
        "arb_Arab: warning: 48 of 48 training rows are test items (finetune.allow_test_overlap): row 1 (passage of "
        in caplog.text
    )
    config = {
        "data": {"source": "hub", "hub_id": "x/y", "hub_revision": "a" * 40},
        "finetune": {"data": {"arb_Arab": {"path": str(path)}}},
        "source_languages": ["arb_Arab"],
    }
    record = provenance_record(config, {}, tmp_path, checks)
    assert record["datasets"]["training"]["arb_Arab"]["checks"]["test_items"] == checks["arb_Arab"]["test_items"]
    assert any(line.endswith("(48 test items trained on)") for line in provenance_lines({**record, "models": {}}))


@pytest.mark.plans
def test_the_workflow_refuses_to_train_on_its_test_items(tmp_path):
    """Finding 5 as a user meets it: `finetune.data` mapping the fixture's own Arabic
    items, and `snakemake results/data/train/arb_Arab.parquet` (prepare_data, then
    prepare_training) stops with the line, writing no training data."""
    from snakemake_runs import run_cli, tiny_config, write_config

    config = tiny_config({"tiny-dense": tmp_path, "tiny-moe": tmp_path})
    config["finetune"] = {
        "data": {
            "arb_Arab": {
                "path": str(REPO / "data" / "belebele_fixture" / "arb_Arab.jsonl"),
                "fields": {**BELEBELE_FIELDS, "answer": "correct_answer_num"},
            }
        }
    }
    config["finetune"]["data"]["arb_Arab"] |= {"answer_as": "index", "index_base": 1}
    configfile = write_config(config, tmp_path / "config.yaml")
    result = run_cli(tmp_path, configfile, "--cores", "1", "results/data/train/arb_Arab.parquet")
    assert result.returncode != 0
    # the tiny config keeps 6 test items: the 6 training rows that are those
    assert "arb_Arab.jsonl: 6 of 48 training rows are test items: row " in result.stderr
    assert not (tmp_path / "results" / "data" / "train").exists() or not any(
        (tmp_path / "results" / "data" / "train").iterdir()
    )


def test_the_test_items_without_their_passages_are_found_by_question_and_options(test_items, tmp_path):
    """The same items mapped without a passage (fields.passage null), their options
    reordered and a zero-width space added: still the test items."""
    rows = pd.read_parquet(test_items[1]).drop(columns=["item_id", "split", "lang"]).head(5)
    records = [
        {
            "q": f"{row.question}\u200b",
            "options": [row.mc_answer4, row.mc_answer3, row.mc_answer2, row.mc_answer1],
            "answer": 5 - row.correct_answer_num,
        }
        for row in rows.itertuples()
    ]
    path = tmp_path / "questions.jsonl"
    _write_jsonl(path, records)
    with pytest.raises(
        XltError,
        match=r"5 of 5 training rows are test items: row 1 has the question and options of test item .*#1 \(heb_Hebr\)",
    ):
        _run(_finetune(path, {"question": "q", "options": "options", "answer": "answer"}), test_items, tmp_path)


@settings(max_examples=40, deadline=None)
@given(chosen=st.sets(st.integers(0, 47), max_size=12), spaced=st.booleans())
def test_overlap_names_exactly_the_test_items_among_the_training_rows(test_items, chosen, spaced):
    """The property: whichever test items a training set holds among rows of its own
    (with their white space changed), exactly those rows are named."""
    from xlt.trainsets import overlap_with_test

    test = pd.concat([pd.read_parquet(path) for path in test_items], ignore_index=True)
    own = map_fields(
        pd.read_json(RACE_LIKE, lines=True), TrainingSet("arb_Arab", RACE_FIELDS, "text", path=str(RACE_LIKE))
    )
    arabic = test[test["lang"] == "arb_Arab"].reset_index(drop=True)
    taken = arabic.iloc[sorted(chosen)].assign(
        flores_passage=lambda f: f["flores_passage"].str.replace(" ", "  " if spaced else " ")
    )
    frame = pd.concat([own, taken], ignore_index=True).assign(
        item_id=lambda f: [f"arb_Arab:train:{k + 1}" for k in range(len(f))]
    )
    found = overlap_with_test(frame, test)
    assert [record["row"] for record in found] == [f"arb_Arab:train:{len(own) + k + 1}" for k in range(len(chosen))]
    assert [record["test_item"] for record in found] == taken["item_id"].tolist()


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda r: r[1]["options"].__setitem__(2, r[1]["options"][0] + " "),
            r"row 2: fields options\[0\] and options\[2\] \(fields.options\) are the same text",
        ),
        (
            lambda r: r[1]["options"].__setitem__(1, "\u00a0".join(r[1]["options"][3].split(" "))),
            r"row 2: fields options\[1\] and options\[3\] \(fields.options\) are the same",
        ),
        (
            lambda r: r[2]["options"].__setitem__(3, "\u200b"),
            r"row 3: field options\[3\] \(fields.options\) is '\\u200b' \(only invisible characters\); "
            r"allowed: non-empty text",
        ),
        (
            lambda r: r[0].__setitem__("question", "\u200b\u2060"),
            r"row 1: field question \(fields.question\) is '\\u200b\\u2060' \(only invisible characters\)",
        ),
    ],
)
def test_training_options_a_reader_cannot_tell_apart_stop_as_belebele_rows_do(tmp_path, change, message):
    """Inconsistent before: Belebele rows refused duplicate options and options of
    invisible characters only; external training rows were accepted."""
    records = [json.loads(line) for line in RACE_LIKE.read_text(encoding="utf-8").splitlines()]
    change(records)
    path = tmp_path / "bad.jsonl"
    _write_jsonl(path, records)
    training_set = TrainingSet("arb_Arab", RACE_FIELDS, "text", path=str(path))
    with pytest.raises(XltError, match=message):
        map_fields(pd.read_json(path, lines=True), training_set)


def test_repeated_training_rows_stop_or_are_dropped_before_the_sources_are_equalised(test_items, tmp_path, caplog):
    """Inconsistent before: repeated rows were accepted, and counted when the sources
    were equalised (two rows repeated cut the other source from 12 examples to 2). Now
    a repeat (white space and option order aside) stops; with drop_duplicate_rows the
    distinct rows are what is counted."""
    caplog.set_level(logging.INFO, logger="xlt")
    records = [json.loads(line) for line in RACE_LIKE.read_text(encoding="utf-8").splitlines()]
    repeated = records[:2] + [
        {
            **records[k % 2],
            "options": list(reversed(records[k % 2]["options"])),
            "article": records[k % 2]["article"] + " ",
        }
        for k in range(10)
    ]
    arabic, persian = tmp_path / "arb.jsonl", tmp_path / "pes.jsonl"
    _write_jsonl(arabic, repeated)
    _write_jsonl(persian, records)
    entry = {"fields": RACE_FIELDS, "answer_as": "text", "index_base": 0}
    finetune = _finetune(arabic, RACE_FIELDS)
    finetune["data"] = {"arb_Arab": {**entry, "path": str(arabic)}, "pes_Arab": {**entry, "path": str(persian)}}
    with pytest.raises(XltError) as caught:
        _run(finetune, test_items, tmp_path, sources=("arb_Arab", "pes_Arab"))
    assert str(caught.value).startswith(
        f"{arabic}: row 3: the same passage, question and options as row 1 (as read: invisible "
        "characters, kinds of space and option order aside; 10 such row(s))"
    )
    finetune["drop_duplicate_rows"] = True
    (arb, pes), checks = _run(finetune, test_items, tmp_path, sources=("arb_Arab", "pes_Arab"))
    assert len(arb) == len(pes) == 2 and arb["question"].tolist() == [records[0]["question"], records[1]["question"]]
    assert checks["arb_Arab"]["rows_read"] == 12 and checks["arb_Arab"]["duplicates_dropped"] == [
        f"arb_Arab:train:{k}" for k in range(3, 13)
    ]
    assert (
        "arb_Arab: dropped 10 of 12 training rows the same as an earlier one "
        "(finetune.drop_duplicate_rows): row 3, row 4," in caplog.text
    )
