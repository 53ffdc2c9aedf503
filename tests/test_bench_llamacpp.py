"""bench/llamacpp.py without llama.cpp: prompt token ids as llama_batch entries, the
engine's stopping rule, label scores, and the decoding of several sequences in one batch
against a fake llama.cpp whose next token depends on a sequence's own tokens only."""

import math

import numpy as np
import pytest
from scripts import load_script

from xlt.inference.requests import Encoded

VOCAB = 11
EOS = 10


def _llamacpp():
    return load_script("bench/llamacpp.py")


def test_prompt_entries_number_each_prompts_positions_and_read_its_last_logits():
    llamacpp = _llamacpp()
    batches = llamacpp.prompt_entries([[5, 6, 7], [8, 9]], n_batch=2)
    entries = [(e.seq, e.position, e.token, e.logits) for batch in batches for e in batch]
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert entries == [(0, 0, 5, False), (0, 1, 6, False), (0, 2, 7, True), (1, 0, 8, False), (1, 1, 9, True)]


def test_stop_reason_is_the_engines_rule():
    stop = _llamacpp().stop_reason
    never, always = (lambda tokens: False), (lambda tokens: True)
    assert stop([1, EOS], 5, {EOS}, always) == "eos"
    assert stop([1, 2], 5, {EOS}, always) == "answer"
    assert stop([1, 2], 2, {EOS}, never) == "budget"
    assert stop([1, 2], 3, {EOS}, never) is None


def test_label_logprobs_are_a_log_softmax_and_refuse_multi_token_labels():
    llamacpp = _llamacpp()
    logits = np.array([1.0, 2.0, 3.0, 0.5], dtype=np.float32)
    total = math.log(sum(math.exp(x) for x in logits))
    assert llamacpp.label_logprobs(logits, [[2], [0]]) == pytest.approx([3.0 - total, 1.0 - total])
    with pytest.raises(ValueError, match="one-token labels"):
        llamacpp.label_logprobs(logits, [[2, 1]])


def _fake_session(llamacpp, n_parallel: int):
    """A Session whose 'model' continues a sequence with (sum of its tokens) mod VOCAB,
    and checks that every sequence's tokens arrive at consecutive positions."""

    class FakeSession(llamacpp.Session):
        def __init__(self):
            self.n_parallel = n_parallel
            self.seen: dict[int, list[int]] = {}
            self.passes = 0

        def clear(self):
            self.seen = {}

        def decode(self, entries):
            self.passes += 1
            for entry in entries:
                history = self.seen.setdefault(entry.seq, [])
                assert entry.position == len(history), "a token at the wrong position"
                history.append(entry.token)
            logits = {}
            for entry in entries:
                if entry.logits:
                    row = np.zeros(VOCAB, dtype=np.float32)
                    row[sum(self.seen[entry.seq]) % VOCAB] = 1.0
                    logits[entry.seq] = row
            return logits

    return FakeSession()


def test_sequences_decoded_together_continue_as_each_alone():
    llamacpp = _llamacpp()
    prompts = [[1, 2], [3], [4, 4, 1], [9], [2, 5]]
    requests = [
        Encoded(ids, "", [[0], [1]] if row == 0 else None, row == 0, None, budget, None)
        for row, (ids, budget) in enumerate(zip(prompts, [6, 4, 0, 6, 3]))
    ]

    def finished(index, tokens):  # "answered" once a row has written a 7
        return tokens[-1] == 7

    alone = _fake_session(llamacpp, 1).generate(requests, {EOS}, finished)
    together_session = _fake_session(llamacpp, 3)
    together = together_session.generate(requests, {EOS}, finished)
    assert [(r.tokens, r.stop_reason, r.label_logprobs) for r in together] == [
        (r.tokens, r.stop_reason, r.label_logprobs) for r in alone
    ]
    # sums mod 11: [1, 2] -> 3, 6, 1, 2, 4, 8 (budget); [3] -> 3, 6, 1, 2 (budget);
    # [9] -> 9, 7 (answer); [2, 5] -> 7 (answer)
    assert [(r.tokens, r.stop_reason) for r in alone] == [
        ([3, 6, 1, 2, 4, 8], "budget"),
        ([3, 6, 1, 2], "budget"),
        ([], "budget"),
        ([9, 7], "answer"),
        ([7], "answer"),
    ]
    assert alone[0].label_logprobs is not None and alone[1].label_logprobs is None
    # two waves of three rows, each a prompt pass and one pass per decoding step past the first
    assert together_session.passes == (1 + 5) + (1 + 1)


def test_an_end_of_sequence_token_stops_a_sequence():
    llamacpp = _llamacpp()
    request = Encoded([4, 6], "", None, False, None, 5, None)  # 4 + 6 = 10: the fake's EOS
    (result,) = _fake_session(llamacpp, 2).generate([request], {EOS}, lambda index, tokens: False)
    assert (result.tokens, result.stop_reason) == ([EOS], "eos")
