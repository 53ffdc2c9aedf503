"""One check for two engine runs over the same requests that must agree."""

import pytest


def assert_same_generations(first, second, tolerance=1e-5):
    """The same texts, token counts and stops, and label scores (choice cell, cloze,
    forced answers) equal to float32 rounding, request by request."""
    assert len(first) == len(second)
    for one, other in zip(first, second):
        assert (one.text, one.n_prompt_tokens, one.n_output_tokens, one.stop_reason) == (
            other.text,
            other.n_prompt_tokens,
            other.n_output_tokens,
            other.stop_reason,
        )
        for scores, expected in (
            (one.label_logprobs, other.label_logprobs),
            (one.forced_logprobs, other.forced_logprobs),
        ):
            assert (scores is None) == (expected is None)
            if expected is not None:
                assert scores == pytest.approx(expected, abs=tolerance)
