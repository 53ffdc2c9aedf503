"""Belebele data: loading (fixture JSON-lines files, or the Hub through `datasets`), row
checks, and the train/test split by passage that keeps every test passage unseen in
training in every language."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import XltError
from .invisible import INVISIBLE
from .jsonline import parse_json_line

BELEBELE_FIELDS = (
    "link",
    "question_number",
    "flores_passage",
    "question",
    "mc_answer1",
    "mc_answer2",
    "mc_answer3",
    "mc_answer4",
    "correct_answer_num",
    "dialect",
)
TEXT_FIELDS = ("flores_passage", "question", "mc_answer1", "mc_answer2", "mc_answer3", "mc_answer4")
OPTION_FIELDS = ("mc_answer1", "mc_answer2", "mc_answer3", "mc_answer4")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class DataSource:
    """Where Belebele rows come from: `fixture` (one <lang>.jsonl per language in
    `fixture_dir`) or `hub` (the `hub_id` dataset, one config per language)."""

    kind: str
    fixture_dir: str = "data/belebele_fixture"
    hub_id: str = "facebook/belebele"
    hub_revision: str | None = None

    @classmethod
    def from_config(cls, data_config: dict) -> DataSource:
        return cls(
            kind=data_config["source"],
            fixture_dir=data_config["fixture_dir"],
            hub_id=data_config["hub_id"],
            hub_revision=data_config.get("hub_revision"),
        )

    def describe(self, lang: str) -> str:
        if self.kind == "fixture":
            return str(Path(self.fixture_dir) / f"{lang}.jsonl")
        return f"{self.hub_id}[{lang}]"


def normalize_text(text: str) -> str:
    """NFC, no byte-order mark, LF line ends: the same passage typed on two systems
    must compare and tokenize the same."""
    text = text.replace("\ufeff", "").replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text).strip()


def _as_read(option: str) -> str:
    """An option as a reader tells it from another: no invisible characters, any run of
    white space (a no-break space too) one space. Case and compatibility forms (x², x2)
    stay: a reader sees them differ."""
    return " ".join(normalize_text(option).translate(_INVISIBLE).split())


def is_blank(text: str) -> bool:
    """Nothing a reader sees: empty once normalised and its invisible characters dropped."""
    return not normalize_text(text).translate(_INVISIBLE).strip()


def same_options(options: list[str]) -> tuple[int, int] | None:
    """(earlier, later) 0-based positions of the first two options a reader cannot tell
    apart (_as_read), or None where the options all differ."""
    seen = [_as_read(option) for option in options]
    for later, option in enumerate(seen[1:], start=1):
        if option in seen[:later]:
            return seen.index(option), later
    return None


_LINE_END = re.compile(r"\r\n|\r|\n")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_INVISIBLE = str.maketrans(dict.fromkeys(INVISIBLE))


def read_jsonl(path: Path) -> pd.DataFrame:
    """One row per line of a JSON-lines file. A byte-order mark and Windows line ends
    are fine; a line that is not a JSON object, or bytes that are not UTF-8, stop with
    the line named. Blank lines are skipped."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        bad_line = data[: error.start].count(b"\n") + 1
        raise XltError(
            f"{path}: line {bad_line}: not UTF-8 text (byte 0x{data[error.start]:02x}); save the file as UTF-8"
        ) from None
    records = []
    # Lines end at LF, CRLF or CR only: str.splitlines() would also split at U+2028,
    # U+0085 and other breaks, which JSON strings may hold raw.
    for number, line in enumerate(_LINE_END.split(text), start=1):
        if not line.strip():
            continue
        record = parse_json_line(line, f"{path}: line {number}")
        if not isinstance(record, dict):
            raise XltError(
                f"{path}: line {number}: expected a JSON object with the Belebele fields, found {type(record).__name__}"
            )
        for field, value in record.items():
            lone = _LONE_SURROGATE.search(value) if isinstance(value, str) else None
            if lone:
                raise XltError(
                    f"{path}: line {number}: field {field} holds a lone surrogate "
                    f"U+{ord(lone.group()):04X} (an escaped half of a character), which is not text"
                )
        records.append(record)
    if not records:
        raise XltError(f"{path}: no rows")
    return pd.DataFrame.from_records(records)


def load_language(source: DataSource, lang: str) -> pd.DataFrame:
    """Rows of one language as loaded, before checks."""
    if source.kind == "fixture":
        path = Path(source.fixture_dir) / f"{lang}.jsonl"
        if not path.is_file():
            raise XltError(f"{path}: fixture file for language {lang} not found")
        return read_jsonl(path)
    import datasets

    datasets.disable_progress_bars()
    try:
        dataset = datasets.load_dataset(source.hub_id, lang, split="test", revision=source.hub_revision)
    except Exception as error:  # network, unknown language config, missing dataset: one line
        raise XltError(f"{source.describe(lang)}: cannot be loaded: {str(error).splitlines()[0]}") from error
    return dataset.to_pandas()


def _whole_number(value) -> int | None:
    """An integer written as one (2), as an integral float (2.0, as pandas stores a
    column with gaps) or as digits ("2", as Belebele stores answers); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():  # not "²" or "٣"
        return int(value.strip())
    return None


def _is_missing(value) -> bool:
    return value is None or (pd.api.types.is_scalar(value) and pd.isna(value))


def check_rows(frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Belebele rows with normalised text and integer numbers, or an error naming the
    file, the row (1-based record number: the line of a JSON-lines file without blank
    lines) and the field."""
    missing = [field for field in BELEBELE_FIELDS if field not in frame.columns]
    if missing:
        raise XltError(
            f"{origin}: missing field(s) {', '.join(missing)}; Belebele rows need {', '.join(BELEBELE_FIELDS)}"
        )
    frame = frame.loc[:, list(BELEBELE_FIELDS)].copy()
    for position, row in enumerate(frame.itertuples(index=False), start=1):
        for field in BELEBELE_FIELDS:
            value = getattr(row, field)
            if _is_missing(value):
                raise XltError(f"{origin}: row {position}: field {field} is missing")
            if field in TEXT_FIELDS + ("link", "dialect"):
                if not isinstance(value, str):
                    raise XltError(f"{origin}: row {position}: field {field} is {value!r}; allowed: text")
                if is_blank(value):
                    raise XltError(
                        f"{origin}: row {position}: field {field} is empty"
                        + (" (only invisible characters)" if value.strip() else "")
                    )
        question_number = _whole_number(row.question_number)
        if question_number is None or not 1 <= question_number < 2**63:
            raise XltError(
                f"{origin}: row {position}: field question_number is {row.question_number!r}; allowed: a "
                "whole number from 1"
            )
        if _whole_number(row.correct_answer_num) not in (1, 2, 3, 4):
            raise XltError(
                f"{origin}: row {position}: field correct_answer_num is {row.correct_answer_num!r}; allowed: 1, 2, 3, 4"
            )
        same = same_options([getattr(row, field) for field in OPTION_FIELDS])
        if same:
            earlier, later = same[0] + 1, same[1] + 1
            raise XltError(
                f"{origin}: row {position}: fields mc_answer{earlier} and mc_answer{later} are the same text "
                f"({normalize_text(getattr(row, f'mc_answer{later}'))[:40]!r}, as read: invisible "
                "characters and kinds of space aside); the four options must differ"
            )
    for field in TEXT_FIELDS + ("link", "dialect"):
        frame[field] = frame[field].map(normalize_text)
    for field in ("question_number", "correct_answer_num"):
        frame[field] = frame[field].map(_whole_number).astype("int64")
    duplicated = frame.duplicated(["link", "question_number"], keep="first")
    if duplicated.any():
        position = int(np.flatnonzero(duplicated.to_numpy())[0]) + 1
        link, number = frame["link"].iloc[position - 1], frame["question_number"].iloc[position - 1]
        first = int(np.flatnonzero(((frame["link"] == link) & (frame["question_number"] == number)).to_numpy())[0]) + 1
        raise XltError(
            f"{origin}: row {position}: duplicate (link, question_number) = ({link}, {number}), first in row {first}"
        )
    frame.insert(0, "item_id", frame["link"] + "#" + frame["question_number"].astype(str))
    return frame


def check_parallel(frames: dict[str, pd.DataFrame], origins: dict[str, str]) -> None:
    """Items must be the same in every language, with the same correct option: the
    statistics pair them as translations of one another."""
    reference_lang = next(iter(frames))
    reference = frames[reference_lang].set_index("item_id")["correct_answer_num"]
    for lang, frame in frames.items():
        items = set(frame["item_id"])
        missing = sorted(set(reference.index) - items)
        extra = sorted(items - set(reference.index))
        if missing:
            raise XltError(
                f"{origins[lang]}: item {missing[0]} of {reference_lang} is missing in {lang} ({len(missing)} missing)"
            )
        if extra:
            raise XltError(f"{origins[lang]}: item {extra[0]} is not in {reference_lang} ({len(extra)} extra)")
        answers = frame.set_index("item_id")["correct_answer_num"]
        differ = sorted(item for item in answers.index if answers[item] != reference[item])
        if differ:
            item = differ[0]
            raise XltError(
                f"{origins[lang]}: item {item}: correct_answer_num is {answers[item]} in {lang} but "
                f"{reference[item]} in "
                f"{reference_lang} ({len(differ)} differ); parallel items share their answer"
            )


def split_links(links, test_fraction: float, seed: int) -> dict[str, str]:
    """Passage link -> split. A seeded permutation of the sorted unique links, so the
    split depends only on the set of passages, the fraction and the seed."""
    unique = sorted(set(links))
    order = np.random.default_rng(seed).permutation(len(unique))
    n_test = max(1, min(len(unique) - 1, round(len(unique) * test_fraction)))
    test = {unique[i] for i in order[:n_test]}
    return {link: ("test" if link in test else "train") for link in unique}


def _capped_items(frame: pd.DataFrame, split: str, cap: int | None, seed: int) -> set[str]:
    items = sorted(frame.loc[frame["split"] == split, "item_id"])
    if cap is None or cap >= len(items):
        return set(items)
    order = np.random.default_rng(seed).permutation(len(items))
    return {items[i] for i in order[:cap]}


def prepare_languages(
    source: DataSource,
    langs: list[str],
    test_fraction: float,
    seed: int,
    max_test_items: int | None = None,
    max_train_items: int | None = None,
) -> dict[str, pd.DataFrame]:
    """Load, check and split every language; the same passages are test in every language."""
    origins = {lang: source.describe(lang) for lang in langs}
    frames = {lang: check_rows(load_language(source, lang), origins[lang]) for lang in langs}
    check_parallel(frames, origins)
    # test_fraction 0: the training data comes from elsewhere (finetune.data), every item is a test item
    split_of = (
        split_links(frames[langs[0]]["link"], test_fraction, seed)
        if test_fraction
        else dict.fromkeys(frames[langs[0]]["link"], "test")
    )
    reference = frames[langs[0]].assign(split=lambda f: f["link"].map(split_of))
    keep = _capped_items(reference, "test", max_test_items, seed) | _capped_items(
        reference, "train", max_train_items, seed
    )
    prepared = {}
    for lang, frame in frames.items():
        frame = frame.assign(split=frame["link"].map(split_of))
        frame = frame[frame["item_id"].isin(keep)].sort_values(["split", "item_id"]).reset_index(drop=True)
        prepared[lang] = frame
    return prepared


def read_prepared(path: str | Path, split: str | None = None) -> pd.DataFrame:
    """A prepared data file (results/data/{lang}.parquet), or one line saying why not:
    at least each item's language, id and options (and split, to select by it)."""
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged or foreign file
        raise XltError(
            f"{path}: not a prepared data file: not a readable parquet file ({type(error).__name__})"
        ) from None
    required = ("item_id", "lang", *OPTION_FIELDS, *(("split",) if split else ()))
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise XltError(f"{path}: not a prepared data file: no column(s) {', '.join(missing)}")
    if split is not None:
        frame = frame[frame["split"] == split].reset_index(drop=True)
    return frame
