"""Synthetic Belebele rows for tests that must not depend on the shipped fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from xlt.data import check_rows
from xlt.prompts import Template


def rows(lang: str, n_passages: int = 10, questions_per_passage: int = 1) -> list[dict]:
    out = []
    for p in range(n_passages):
        for q in range(1, questions_per_passage + 1):
            out.append(
                {
                    "link": f"https://example.invalid/{p:03d}",
                    "question_number": q,
                    "flores_passage": f"Passage {p} in {lang}. Lina bought {p + 2} apples at the market.",
                    "question": f"How many apples did Lina buy? ({q})",
                    "mc_answer1": str(p + 1),
                    "mc_answer2": str(p + 2),
                    "mc_answer3": str(p + 3),
                    "mc_answer4": str(p + 4),
                    "correct_answer_num": "2",
                    "dialect": lang,
                }
            )
    return out


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


TINY_MODELS = ["tiny-dense", "tiny-moe"]
ENGLISH = Template(
    "eng_Latn",
    "Passage",
    "Question",
    "Answer",
    "Answer with the letter only.",
    "Think step by step.",
    "Let's think step by step.",
)


def items(n: int = 6, lang: str = "eng_Latn") -> pd.DataFrame:
    """Checked synthetic rows with their language, as prepare_data leaves them."""
    frame = check_rows(pd.DataFrame(rows(lang, n)), "synthetic")
    frame["lang"] = lang
    return frame
