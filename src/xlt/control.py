"""The format-only control of a source's fine-tuning (finetune.format_control).

The control adapter trains on the source's own training examples, with the same
prompts, loss masks and recipe, but every gold answer replaced by a letter drawn
independently of it: a seeded permutation of a list balanced over A-D. It learns to
answer with a letter, not which letter is right, so its gain over the base model is
what the answer format alone buys (the label-corruption control of Kung & Peng, 2023),
and the fine-tuned variant's gain over it is what the right answers add.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import XltError

# Mixed into the seed so the letters are not a function of the same random stream that
# chose the training examples (trainsets.equalise draws from the bare seed).
CONTROL_STREAM = 0x43544C


def control_letters(n: int, seed: int) -> np.ndarray:
    """`n` answers (1-4), each option n // 4 times and the remainder's options drawn
    without repetition, in a seeded random order. They depend on `n` and `seed` alone,
    so they carry nothing of the gold answers."""
    rng = np.random.default_rng([seed, CONTROL_STREAM])
    balanced = np.concatenate([np.repeat(np.arange(1, 5), n // 4), rng.choice(np.arange(1, 5), n % 4, replace=False)])
    return rng.permutation(balanced)


def control_examples(training: pd.DataFrame, seed: int, origin: str) -> pd.DataFrame:
    """The rows of `training` (prepared training examples) with each answer replaced by
    control_letters: everything else, the prompt included, stays as it is."""
    if training.empty:
        raise XltError(f"{origin}: no training examples to build the format-only control from")
    return training.assign(correct_answer_num=control_letters(len(training), seed))
