"""Belebele data: loading (fixture files or the Hub, both through `datasets`), row
checks, and the train/test split by passage that keeps every test passage unseen in
training in every language."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import XltError

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
    def from_config(cls, data_config: dict) -> "DataSource":
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


def load_language(source: DataSource, lang: str) -> pd.DataFrame:
    """Rows of one language as loaded, before checks."""
    import datasets

    datasets.disable_progress_bars()
    if source.kind == "fixture":
        path = Path(source.fixture_dir) / f"{lang}.jsonl"
        if not path.is_file():
            raise XltError(f"{path}: fixture file for language {lang} not found")
        try:
            dataset = datasets.load_dataset("json", data_files=str(path), split="train")
        except Exception as error:  # datasets wraps JSON errors in several types
            raise XltError(f"{path}: cannot be read as JSON lines: {str(error).splitlines()[0]}") from None
    else:
        dataset = datasets.load_dataset(source.hub_id, lang, split="test", revision=source.hub_revision)
    return dataset.to_pandas()


def check_rows(frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Belebele rows with normalised text and an integer answer, or an error naming the
    file, the row (1-based, as an editor shows it) and the field."""
    missing = [field for field in BELEBELE_FIELDS if field not in frame.columns]
    if missing:
        raise XltError(f"{origin}: missing field(s) {', '.join(missing)}; Belebele rows need {', '.join(BELEBELE_FIELDS)}")
    frame = frame.loc[:, list(BELEBELE_FIELDS)].copy()
    for position, row in enumerate(frame.itertuples(index=False), start=1):
        for field in TEXT_FIELDS + ("link",):
            value = getattr(row, field)
            if not isinstance(value, str) or not normalize_text(value):
                raise XltError(f"{origin}: row {position}: field {field} is empty or not text")
        try:
            answer = int(str(row.correct_answer_num).strip())
        except ValueError:
            answer = None
        if answer not in (1, 2, 3, 4):
            raise XltError(f"{origin}: row {position}: field correct_answer_num is {row.correct_answer_num!r}; allowed: 1, 2, 3, 4")
    for field in TEXT_FIELDS + ("link", "dialect"):
        frame[field] = frame[field].map(lambda value: normalize_text(str(value)))
    frame["correct_answer_num"] = frame["correct_answer_num"].map(lambda value: int(str(value).strip()))
    frame["question_number"] = frame["question_number"].astype(int)
    duplicated = frame.duplicated(["link", "question_number"], keep="first")
    if duplicated.any():
        position = int(np.flatnonzero(duplicated.to_numpy())[0]) + 1
        row = frame.iloc[position - 1]
        raise XltError(
            f"{origin}: row {position}: duplicate (link, question_number) = ({row.link}, {row.question_number})"
        )
    frame.insert(0, "item_id", frame["link"] + "#" + frame["question_number"].astype(str))
    return frame


def check_parallel(frames: dict[str, pd.DataFrame], origins: dict[str, str]) -> None:
    """Items must be the same in every language: the statistics pair them."""
    reference_lang = next(iter(frames))
    reference = set(frames[reference_lang]["item_id"])
    for lang, frame in frames.items():
        items = set(frame["item_id"])
        if items != reference:
            missing = sorted(reference - items)
            extra = sorted(items - reference)
            if missing:
                raise XltError(f"{origins[lang]}: item {missing[0]} of {reference_lang} is missing in {lang} ({len(missing)} missing)")
            raise XltError(f"{origins[lang]}: item {extra[0]} is not in {reference_lang} ({len(extra)} extra)")


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
    split_of = split_links(frames[langs[0]]["link"], test_fraction, seed)
    reference = frames[langs[0]].assign(split=lambda f: f["link"].map(split_of))
    keep = _capped_items(reference, "test", max_test_items, seed) | _capped_items(reference, "train", max_train_items, seed)
    prepared = {}
    for lang, frame in frames.items():
        frame = frame.assign(split=frame["link"].map(split_of))
        frame = frame[frame["item_id"].isin(keep)].sort_values(["split", "item_id"]).reset_index(drop=True)
        prepared[lang] = frame
    return prepared


def read_prepared(path: str | Path, split: str | None = None) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    if split is not None:
        frame = frame[frame["split"] == split].reset_index(drop=True)
    return frame
