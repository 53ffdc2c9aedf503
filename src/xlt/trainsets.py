"""Fine-tuning data of each source language: the source's Belebele training split, or an
external multiple-choice set (a local JSON-lines or parquet file, or a Hub dataset)
whose fields are mapped onto passage (optional), question, four options and the answer.

Training rows are checked as strictly as Belebele's test rows (xlt.data): no field
empty or only invisible characters, four options a reader can tell apart, no row the
same as another (as read: passage, question and options; dropped instead where
`finetune.drop_duplicate_rows` says so), and none that is a test item, by its passage
text or by its question and options (`finetune.allow_test_overlap` lets them through,
named in the log and in results/data/train/checks.json, which provenance.json
carries). Every source trains on the same number of examples (the smallest source's
unless `finetune.examples` says otherwise), so a difference between sources' adapters
is not one of data size. Rows come out in the shape of prepared Belebele rows, which is
what the fine-tuning stage reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .data import (
    OPTION_FIELDS,
    _as_read,
    _is_missing,
    _whole_number,
    is_blank,
    normalize_text,
    read_jsonl,
    read_prepared,
    same_options,
)
from .errors import XltError
from .prompts import LETTERS

TRAINING_COLUMNS = ("item_id", "lang", "flores_passage", "question", *OPTION_FIELDS, "correct_answer_num", "split")


@dataclass(frozen=True)
class TrainingSet:
    """One source's external training set, as `finetune.data.<source>` configures it."""

    lang: str
    fields: dict
    answer_as: str = "letter"
    index_base: int = 0
    path: str | None = None
    hub: dict | None = None
    max_examples: int | None = None

    @classmethod
    def from_config(cls, lang: str, entry: dict) -> TrainingSet:
        return cls(
            lang=lang,
            fields=entry["fields"],
            answer_as=entry["answer_as"],
            index_base=entry["index_base"],
            path=entry.get("path"),
            hub=entry.get("hub"),
            max_examples=entry.get("max_examples"),
        )

    def hub_source(self) -> dict:
        """The Hub dataset the set is read from where it has no path (the schema asks
        for one of the two)."""
        if self.hub is None:
            raise XltError(f"finetune.data.{self.lang}: neither path nor hub; give one")
        return self.hub

    def describe(self) -> str:
        if self.path:
            return self.path
        hub = self.hub_source()
        return f"{hub['id']}[{hub.get('config') or 'default'}/{hub.get('split', 'train')}]"


def read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise XltError(f"{path}: training file not found")
    if path.suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # a truncated or foreign file: one line
            raise XltError(f"{path}: not a readable parquet file ({str(error).splitlines()[0]})") from None
        if frame.empty:
            raise XltError(f"{path}: no rows")
        return frame
    return read_jsonl(path)


def load_training_set(training_set: TrainingSet) -> pd.DataFrame:
    """The set's rows as stored, before the field map."""
    if training_set.path:
        return read_table(Path(training_set.path))
    import datasets

    hub = training_set.hub_source()
    datasets.disable_progress_bars()
    try:
        dataset = datasets.load_dataset(
            hub["id"], hub.get("config"), split=hub.get("split", "train"), revision=hub.get("revision")
        )
    except Exception as error:  # network, unknown config or split, missing dataset: one line
        raise XltError(f"{training_set.describe()}: cannot be loaded: {str(error).splitlines()[0]}") from error
    return dataset.to_pandas()


def _text(value, origin: str, row: int, key: str, column: str) -> str:
    if _is_missing(value) or not isinstance(value, str) or is_blank(value):
        shown = f"{value!r} (only invisible characters)" if isinstance(value, str) and value.strip() else repr(value)
        raise XltError(f"{origin}: row {row}: field {column} (fields.{key}) is {shown}; allowed: non-empty text")
    return normalize_text(value)


def _options(record: dict, fields: dict, origin: str, row: int) -> list[str]:
    spec = fields["options"]
    if isinstance(spec, str):
        value = record[spec]
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if not isinstance(value, (list, tuple)) or len(value) != 4:
            count = f"{len(value)} entries" if isinstance(value, (list, tuple)) else repr(value)
            raise XltError(
                f"{origin}: row {row}: field {spec} (fields.options) is {count}; allowed: a list of exactly 4 options"
            )
        columns = [f"{spec}[{k}]" for k in range(4)]
        texts = [_text(option, origin, row, "options", column) for column, option in zip(columns, value)]
    else:
        columns = list(spec)
        texts = [_text(record[column], origin, row, "options", column) for column in spec]
    same = same_options(texts)
    if same:
        raise XltError(
            f"{origin}: row {row}: fields {columns[same[0]]} and {columns[same[1]]} (fields.options) are "
            f"the same text ({texts[same[1]][:40]!r}, as read: "
            "invisible characters and kinds of space aside); the four options must differ"
        )
    return texts


def _answer(value, options: list[str], training_set: TrainingSet, origin: str, row: int) -> int:
    """The correct option, 1 to 4."""
    column = training_set.fields["answer"]
    where = f"{origin}: row {row}: field {column} (fields.answer, answer_as {training_set.answer_as})"
    if training_set.answer_as == "letter":
        letter = value.strip().upper() if isinstance(value, str) else None
        if letter not in LETTERS:
            raise XltError(f"{where} is {value!r}; allowed: {', '.join(LETTERS)}")
        return LETTERS.index(letter) + 1
    if training_set.answer_as == "index":
        index = _whole_number(value)
        first = training_set.index_base
        if index is None or not first <= index <= first + 3:
            raise XltError(
                f"{where} is {value!r}; allowed: {', '.join(str(first + k) for k in range(4))} (index_base {first})"
            )
        return index - first + 1
    text = normalize_text(value) if isinstance(value, str) else None
    matches = [k for k, option in enumerate(options, start=1) if option == text]
    if len(matches) != 1:
        found = "matches more than one option" if matches else "matches none of the options"
        raise XltError(f"{where} is {value!r}, which {found}; allowed: the text of exactly one option")
    return matches[0]


def map_fields(frame: pd.DataFrame, training_set: TrainingSet) -> pd.DataFrame:
    """Rows in the shape of prepared Belebele training rows, or one line naming the
    file, the row (1-based) and the field at fault."""
    origin, fields = training_set.describe(), training_set.fields
    options = [fields["options"]] if isinstance(fields["options"], str) else list(fields["options"])
    mapped = {"passage": fields.get("passage"), "question": fields["question"], "answer": fields["answer"]}
    for key, column in [*((k, c) for k, c in mapped.items() if c), *(("options", c) for c in options)]:
        if column not in frame.columns:
            raise XltError(
                f"{origin}: fields.{key}: no field {column!r} in the data; its fields: "
                f"{', '.join(map(str, frame.columns))}"
            )
    if training_set.max_examples is not None:
        frame = frame.iloc[: training_set.max_examples]
    rows = []
    for row, record in enumerate(frame.to_dict("records"), start=1):
        texts = _options(record, fields, origin, row)
        rows.append(
            {
                "item_id": f"{training_set.lang}:train:{row}",
                "lang": training_set.lang,
                "flores_passage": _text(record[fields["passage"]], origin, row, "passage", fields["passage"])
                if fields.get("passage")
                else "",
                "question": _text(record[fields["question"]], origin, row, "question", fields["question"]),
                **dict(zip(OPTION_FIELDS, texts)),
                "correct_answer_num": _answer(record[fields["answer"]], texts, training_set, origin, row),
                "split": "train",
            }
        )
    return pd.DataFrame(rows, columns=list(TRAINING_COLUMNS))


def belebele_training(data_file: str, lang: str) -> pd.DataFrame:
    train = read_prepared(data_file, split="train").assign(lang=lang)
    if train.empty:
        raise XltError(f"{data_file}: no training items for source {lang} (data.test_fraction leaves none)")
    return train.loc[:, list(TRAINING_COLUMNS)]


def describe_row(item_id: str) -> str:
    """A training row as its user finds it: `row N` of an external file, else its item."""
    return f"row {item_id.rsplit(':', 1)[1]}" if ":train:" in item_id else f"item {item_id}"


def _as_read_item(frame: pd.DataFrame) -> pd.Series:
    """Each row's question and options as a reader tells them apart (options in any order)."""
    options = frame.loc[:, list(OPTION_FIELDS)].map(_as_read).to_numpy()
    return (
        frame["question"].map(_as_read)
        + "\0"
        + pd.Series(["\0".join(sorted(row)) for row in options], index=frame.index)
    )


def duplicates(frame: pd.DataFrame) -> list[tuple[int, int]]:
    """(position, position of its first copy) of each row with the passage, question and
    options of an earlier one, as read."""
    key = frame["flores_passage"].map(_as_read) + "\0" + _as_read_item(frame)
    first: dict[str, int] = {}
    found = []
    for position, value in enumerate(key):
        if value in first:
            found.append((position, first[value]))
        else:
            first[value] = position
    return found


def without_duplicates(frame: pd.DataFrame, origin: str, drop: bool) -> tuple[pd.DataFrame, list[str]]:
    """`frame` less rows the same as an earlier one (and which were dropped) where `drop`;
    else an error naming the first."""
    found = duplicates(frame)
    if found and not drop:
        position, first = found[0]
        ids = frame["item_id"].tolist()
        raise XltError(
            f"{origin}: {describe_row(ids[position])}: the same passage, question and options as "
            f"{describe_row(ids[first])} (as read: invisible characters, "
            f"kinds of space and option order aside; {len(found)} such row(s)); a repeated row trains "
            "twice and counts twice when sources are equalised. "
            "Remove them, or drop them with finetune.drop_duplicate_rows: true"
        )
    dropped = [frame["item_id"].iloc[position] for position, _ in found]
    return frame.drop(index=frame.index[[position for position, _ in found]]).reset_index(drop=True), dropped


def overlap_with_test(frame: pd.DataFrame, test: pd.DataFrame) -> list[dict]:
    """The training rows that are test items: the same passage text as a test item's, or
    the same question and options (for sets without passages), as read. One record per
    such row: its item id, the test item and its language, and by which."""
    passages: dict[str, tuple[str, str]] = {}
    questions: dict[str, tuple[str, str]] = {}
    for passage, item, item_id, lang in zip(
        test["flores_passage"].map(_as_read), _as_read_item(test), test["item_id"], test["lang"]
    ):
        passages.setdefault(passage, (item_id, lang))
        questions.setdefault(item, (item_id, lang))
    found = []
    for item_id, passage, item in zip(frame["item_id"], frame["flores_passage"].map(_as_read), _as_read_item(frame)):
        by, match = (
            ("passage", passages[passage]) if passage in passages else ("question and options", questions.get(item))
        )
        if match:
            found.append({"row": item_id, "test_item": match[0], "lang": match[1], "by": by})
    return found


def check_overlap(frame: pd.DataFrame, test: pd.DataFrame, origin: str, allow: bool) -> list[dict]:
    """overlap_with_test's records where `allow`; else an error naming the first."""
    found = overlap_with_test(frame, test)
    if found and not allow:
        first = found[0]
        raise XltError(
            f"{origin}: {len(found)} of {len(frame)} training rows are test items: "
            f"{describe_row(first['row'])} has the {first['by']} of test item "
            f"{first['test_item']} ({first['lang']}); fine-tuning on the test items measures memory, not "
            "transfer. Remove them, or allow it "
            "(finetune.allow_test_overlap: true) and the log and results/provenance.json name them"
        )
    return found


def equalise(frames: dict[str, pd.DataFrame], examples: int | None, seed: int) -> dict[str, pd.DataFrame]:
    """The same number of examples for every source: `examples`, or the smallest
    source's count. Each source keeps a seeded random subset, in its original order."""
    counts = {lang: len(frame) for lang, frame in frames.items()}
    smallest = min(counts, key=counts.__getitem__)
    n = counts[smallest] if examples is None else examples
    if n > counts[smallest]:
        raise XltError(f"finetune.examples: {n} examples per source, but source {smallest} has only {counts[smallest]}")
    kept = {}
    for lang, frame in frames.items():
        order = np.sort(np.random.default_rng(seed).permutation(len(frame))[:n])
        kept[lang] = frame.iloc[order].reset_index(drop=True)
    return kept
