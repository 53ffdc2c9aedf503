"""The thresholds at which a cell's answers are read as a format artefact rather than a
measurement (docs/diagnostics.md), shared by the scores, the report's warnings and the
comparison's notes on knowledge scores that cannot show knowledge."""

import math

# A cell answers (almost) one label when its most frequent answer has this share with
# nearly every output answered (issue 13).
CONSTANT_TOP_SHARE = 0.6
CONSTANT_MIN_PARSED = 0.9


def is_constant(top_share: float, answered: float) -> bool:
    return top_share >= CONSTANT_TOP_SHARE and answered >= CONSTANT_MIN_PARSED


def top_share(parsed) -> float:
    """The share of the most frequent answer among the answers given (a pandas Series of
    answers, null where none was found); NaN where none was given."""
    counts = parsed.dropna().value_counts()
    return float(counts.iloc[0] / counts.sum()) if len(counts) else math.nan
