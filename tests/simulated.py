"""Item-level predictions drawn with known accuracies, for statistics tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from xlt.paths import PREDICTION_COLUMNS


def predictions(accuracy: dict[tuple[str, str, str, str], float], n_items: int, seed: int = 0) -> pd.DataFrame:
    """accuracy[(model, variant, prompt, lang)] -> probability correct; parsed_choice is
    the answer when correct, else a wrong option (or None one time in five)."""
    rng = np.random.default_rng(seed)
    rows = []
    for (model, variant, prompt, lang), p in accuracy.items():
        correct = rng.random(n_items) < p
        for i in range(n_items):
            answer = 1 + i % 4
            if correct[i]:
                choice = answer
            elif rng.random() < 0.2:
                choice = None
            else:
                choice = 1 + (answer % 4)
            rows.append({
                "item_id": f"item{i:04d}", "lang": lang, "model": model, "variant": variant, "prompt": prompt,
                "raw_output": f"Answer: {'ABCD'[choice - 1] if choice else '?'}", "parsed_choice": choice,
                "answer": answer, "correct": choice == answer, "n_prompt_tokens": 100, "n_output_tokens": 3,
            })
    frame = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
    frame["parsed_choice"] = frame["parsed_choice"].astype("Int64")
    return frame


def study_cells(models, langs, base: float, gains: dict[str, float], cot_gain: float = 0.0):
    """Accuracy per cell: base everywhere, + gains[lang] after fine-tuning, + cot_gain with CoT."""
    cells = {}
    for model in models:
        for lang in langs:
            for variant in ("base", "ft"):
                for prompt in ("direct", "cot"):
                    p = base + (gains.get(lang, 0.0) if variant == "ft" else 0.0) + (cot_gain if prompt == "cot" else 0.0)
                    cells[(model, variant, prompt, lang)] = min(max(p, 0.0), 1.0)
    return cells
