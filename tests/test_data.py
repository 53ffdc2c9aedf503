import pandas as pd
import pytest
from belebele_rows import rows, write_jsonl

from xlt.data import DataSource, check_rows, normalize_text, prepare_languages, split_links
from xlt.errors import XltError

LANGS = ["arb_Arab", "heb_Hebr", "eng_Latn"]


@pytest.fixture
def fixture_dir(tmp_path):
    for lang in LANGS:
        write_jsonl(tmp_path / f"{lang}.jsonl", rows(lang, n_passages=10, questions_per_passage=2))
    return tmp_path


def test_split_is_by_passage_and_disjoint_in_every_language(fixture_dir):
    frames = prepare_languages(DataSource("fixture", fixture_dir=str(fixture_dir)), LANGS, test_fraction=0.4, seed=7)
    test_links = None
    for frame in frames.values():
        train = set(frame.loc[frame.split == "train", "link"])
        test = set(frame.loc[frame.split == "test", "link"])
        assert not train & test
        assert len(test) == 4 and len(train) == 6
        # both questions of a passage land on the same side
        assert frame.groupby("link")["split"].nunique().max() == 1
        test_links = test if test_links is None else test_links
        assert test == test_links


def test_split_depends_on_seed_and_passages_only():
    links = [f"l{i}" for i in range(20)]
    assert split_links(links, 0.5, 1) == split_links(list(reversed(links)), 0.5, 1)
    assert split_links(links, 0.5, 1) != split_links(links, 0.5, 2)


def test_caps_keep_the_same_items_in_every_language(fixture_dir):
    frames = prepare_languages(
        DataSource("fixture", fixture_dir=str(fixture_dir)), LANGS, 0.5, 3, max_test_items=3, max_train_items=2
    )
    items = [set(f.loc[f.split == "test", "item_id"]) for f in frames.values()]
    assert len(items[0]) == 3 and all(i == items[0] for i in items)
    assert all((f.split == "train").sum() == 2 for f in frames.values())


def test_rows_are_normalised(fixture_dir):
    frame = pd.DataFrame(rows("eng_Latn", 2))
    frame.loc[0, "flores_passage"] = "\ufeffLine one\r\nline two"
    frame.loc[1, "question"] = "cafe\u0301?"  # decomposed é
    checked = check_rows(frame, "x.jsonl")
    assert checked.loc[0, "flores_passage"] == "Line one\nline two"
    assert checked.loc[1, "question"] == "caf\u00e9?"
    assert checked["correct_answer_num"].tolist() == [2, 2]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("correct_answer_num", "5", "row 2: field correct_answer_num is '5'; allowed: 1, 2, 3, 4"),
        ("mc_answer3", "  ", "row 2: field mc_answer3 is empty"),
        ("flores_passage", None, "row 2: field flores_passage is missing"),
    ],
)
def test_bad_row_names_file_row_and_field(field, value, message):
    records = rows("eng_Latn", 3)
    records[1][field] = value
    with pytest.raises(XltError, match=f"^x.jsonl: {message}"):
        check_rows(pd.DataFrame(records), "x.jsonl")


def test_duplicate_item_is_an_error():
    records = rows("eng_Latn", 3)
    records[2]["link"] = records[0]["link"]
    with pytest.raises(XltError, match=r"row 3: duplicate \(link, question_number\)"):
        check_rows(pd.DataFrame(records), "x.jsonl")


def test_item_missing_in_one_language_is_an_error(fixture_dir):
    write_jsonl(fixture_dir / "heb_Hebr.jsonl", rows("heb_Hebr", 9, 2))
    with pytest.raises(
        XltError, match="heb_Hebr.jsonl: item https://example.invalid/009#1 of arb_Arab is missing in heb_Hebr"
    ):
        prepare_languages(DataSource("fixture", fixture_dir=str(fixture_dir)), LANGS, 0.5, 1)


def test_normalize_text():
    assert normalize_text("\ufeff a\r\nb \r") == "a\nb"
