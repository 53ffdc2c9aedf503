"""Predict shards checked, not trusted (issue 24): a stored result is read back only for
the request it names and from its own wave, a line edited, torn or malformed is
recomputed and the log says how many, a NaN score never wins an argmax (a one-line
error naming model, item and prompt), and `--fresh` discards a job's shards."""

from __future__ import annotations

import json
import math
from logging.handlers import BufferingHandler

import numpy as np
import pandas as pd
import pytest
from belebele_rows import ENGLISH, items
from faultlib import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from xlt.config import validate_config
from xlt.errors import XltError
from xlt.inference.hf import HFBackend
from xlt.inference.predictions import prediction_frames
from xlt.inference.requests import Generation, build_requests
from xlt.inference.shards import run_fingerprint
from xlt.logs import logging_to
from xlt.models import ModelSpec, load_model, load_tokenizer

SPEC = ModelSpec("tiny-dense")


@pytest.fixture(scope="module")
def backend(prepared_tiny):
    tokenizer = load_tokenizer(prepared_tiny["tiny-dense"], SPEC)
    model = load_model(prepared_tiny["tiny-dense"], SPEC, dtype="float32")
    return HFBackend(SPEC, tokenizer, model, 2, {"model": "tiny-dense"})


def _requests(n: int = 4):
    return build_requests(items(n), {"eng_Latn": ENGLISH}, "cot", "generate", 6)


def _run_twice(backend, tmp_path, damage):
    """A run that keeps its shard, the shard damaged by `damage(wave lines)`, and a
    second run: (first results, second results, the second run's log)."""
    shard = tmp_path / ".predict.jsonl"
    requests = _requests()
    first = backend.run(requests, resume={"cot": shard})
    header, *waves = shard.read_text(encoding="utf-8").splitlines()
    shard.write_text("\n".join([header, *damage([json.loads(line) for line in waves])]) + "\n", encoding="utf-8")
    heard = BufferingHandler(capacity=1000)
    with logging_to(heard):
        second = backend.run(requests, resume={"cot": shard})
    return first, second, [record.getMessage() for record in heard.buffer]


def _generation_in(record):
    """The first stored result (a dict with the generated text) in a wave line, wherever
    the line's format keeps it."""
    if isinstance(record, dict) and "text" in record:
        return record
    values = record.values() if isinstance(record, dict) else record if isinstance(record, list) else []
    return next((found for value in values if (found := _generation_in(value)) is not None), None)


def _line(record: dict) -> str:
    """A wave line rehashed after its content changed: only the checks of what it holds
    can refuse it."""
    record = {key: value for key, value in record.items() if key != "sha256"}
    return json.dumps(
        {**record, "sha256": run_fingerprint(wave=record.get("wave"), results=record.get("results"))},
        ensure_ascii=False,
    )


def test_a_hand_edited_shard_is_recomputed_not_trusted(backend, tmp_path):
    """Finding 7: a shard line edited by hand with its fingerprint unchanged went into
    the predictions. Now the line's hash no longer matches: it is recomputed."""

    def edit(waves):
        line = json.dumps(waves[0], ensure_ascii=False)
        text = json.dumps(_generation_in(waves[0])["text"], ensure_ascii=False)
        return [
            line.replace(text, json.dumps("Answer: D (edited by hand)"), 1),
            *(json.dumps(wave, ensure_ascii=False) for wave in waves[1:]),
        ]

    first, second, log = _run_twice(backend, tmp_path, edit)
    assert second == first and "edited" not in json.dumps([result.text for result in second])
    assert "cot: 2 of 4 results read back from " in log[0] and log[0].endswith(
        "1 line(s) torn, malformed, edited or not of their wave: their results are recomputed"
    )


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda wave: wave.pop("results"), id="missing key"),
        pytest.param(lambda wave: wave["results"][0].__setitem__("index", 99), id="index out of range"),
        pytest.param(lambda wave: wave.__setitem__("results", 7), id="results not a list"),
        pytest.param(lambda wave: _generation_in(wave).__setitem__("extra", 1), id="extra field"),
        pytest.param(lambda wave: _generation_in(wave).__setitem__("n_output_tokens", "3"), id="wrong type"),
        pytest.param(lambda wave: _generation_in(wave).__setitem__("stop_reason", "tired"), id="unknown stop reason"),
        pytest.param(
            lambda wave: wave["results"][0]["request"].__setitem__("item", "eng_Latn/elsewhere#1"), id="another item"
        ),
        pytest.param(lambda wave: wave["results"][0]["request"].__setitem__("encoded", "0" * 32), id="other token ids"),
        pytest.param(lambda wave: wave.__setitem__("wave", 1 - wave["wave"]), id="another wave"),
        pytest.param(lambda wave: wave.__setitem__("wave", True), id="wave not a number"),
    ],
)
def test_a_malformed_shard_line_is_recomputed_and_counted(backend, tmp_path, damage):
    """Finding 8: a shard line missing keys, with an index out of range, an extra field
    or a wrong type stopped the job with `xlt: unexpected KeyError/IndexError/TypeError`
    on every rerun, until the hidden file was deleted by hand. Now the line is left out
    (even rehashed, so that only the checks of what it holds can tell), its results are
    recomputed and the log says so."""

    def damaged(waves):
        damage(waves[0])
        return [_line(wave) for wave in waves]

    first, second, log = _run_twice(backend, tmp_path, damaged)
    assert second == first
    assert log[0].endswith(
        "results read back from "
        + str(tmp_path / ".predict.jsonl")
        + "; 1 line(s) torn, malformed, edited or not of their wave: their results are recomputed"
    )


def test_a_result_moved_to_another_waves_line_is_recomputed(backend, tmp_path):
    """A line holding a result of another wave, or lacking one of its own, does not
    match its wave: both waves are recomputed whole, as an uninterrupted run computes
    them (a request decoded in another batch can come out differently)."""

    def moved(waves):
        waves[1]["results"].append(waves[0]["results"].pop())
        return [_line(wave) for wave in waves]

    first, second, log = _run_twice(backend, tmp_path, moved)
    assert second == first and "cot: 0 of 4 results read back" in log[0] and "; 2 line(s) torn" in log[0]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(allow_nan=False, allow_infinity=True, width=32), st.just(math.nan)), min_size=4, max_size=4
    )
)
def test_a_nan_never_wins_the_likeliest_label(scores):
    """Finding 6: a NaN label log-probability made parsed_choice 1 ("A"): max(..., key=)
    never prefers anything to a NaN in first place. Now any NaN is an error naming the
    model, item and prompt; without one the choice is the first largest score."""
    request = build_requests(items(1), {"eng_Latn": ENGLISH}, "direct", "generate", 4)[0]
    result = Generation("", 10, 0, "eos", scores)
    if any(math.isnan(score) for score in scores):
        with pytest.raises(
            XltError,
            match=rf"^model m: item {request.item_id} \(eng_Latn\), prompt (direct|choice): a label "
            r"log-probability is NaN",
        ):
            prediction_frames([request], [result], "m", "base")
    else:
        frames = prediction_frames([request], [result], "m", "base")
        assert frames["choice"]["parsed_choice"].tolist() == [int(np.argmax(scores)) + 1]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(st.one_of(st.floats(-50, 50), st.just(math.nan)), min_size=5, max_size=5), min_size=1, max_size=6)
)
def test_a_nan_never_wins_a_greedy_step(rows):
    """The decoding step's argmax: torch takes a NaN for the largest value; a row with a
    NaN stops decoding (NotANumber names it), every other row gets its largest score."""
    import torch

    from xlt.inference.engine import NotANumber, greedy_tokens

    logits = torch.tensor(rows, dtype=torch.float32)
    with_nan = [row for row, values in enumerate(rows) if any(math.isnan(value) for value in values)]
    numbers = [10 + row for row in range(len(rows))]
    if with_nan:
        with pytest.raises(NotANumber) as caught:
            greedy_tokens(logits, numbers)
        assert caught.value.rows == [numbers[row] for row in with_nan]
    else:
        assert greedy_tokens(logits, numbers).tolist() == [
            int(np.argmax(np.array(values, dtype=np.float32))) for values in rows
        ]


def test_nan_scores_while_decoding_are_one_line_naming_model_item_and_prompt(backend, tmp_path, monkeypatch):
    forward = backend.model.forward

    def nan_logits(*args, **kwargs):
        output = forward(*args, **kwargs)
        output.logits[:] = math.nan
        return output

    monkeypatch.setattr(backend.model, "forward", nan_logits)
    requests = _requests(2)
    with pytest.raises(
        XltError,
        match=r"^model tiny-dense: item .*#1 \(eng_Latn\), prompt cot: the scores of the next token are NaN at "
        r"a decoding step",
    ):
        backend.run(requests)


def test_fresh_discards_a_jobs_shards(prepared_tiny, tmp_path, monkeypatch, capsys):
    """`xlt predict --fresh` (or XLT_FRESH=1, which Snakemake's jobs inherit): the
    shards of earlier runs are discarded and every result computed again."""
    from xlt.cli import main
    from xlt.jobs import settings_json
    from xlt.settings import PrepareDataSettings
    from xlt.stages import prepare_data

    monkeypatch.chdir(REPO)
    config = validate_config(
        {
            "data": {"max_test_items": 2},
            "languages": {
                "eng_Latn": {"family": "x", "script": "Latn"},
                "heb_Hebr": {"family": "Semitic", "script": "Hebr"},
                "arb_Arab": {"family": "Semitic", "script": "Arab"},
            },
            "source_language": "arb_Arab",
            "related_families": ["Semitic"],
            "prompts": {"direct_max_new_tokens": 2, "cot_max_new_tokens": 4},
            "models": {"tiny-dense": {"path": str(prepared_tiny["tiny-dense"])}},
        }
    )
    data = tmp_path / "eng_Latn.parquet"
    prepare_data(
        settings=PrepareDataSettings(data=config["data"], langs=["eng_Latn"], all_test=False), outputs=[str(data)]
    )
    settings = json.loads(settings_json(config, "predict", "tiny-dense"))
    settings["templates"] = {"eng_Latn": settings["templates"]["eng_Latn"]}
    outputs = [str(tmp_path / "p" / cell / "eng_Latn.parquet") for cell in ("direct", "choice", "cot", "cloze")]
    argv = [
        "predict",
        "--model",
        "tiny-dense",
        "--variant",
        "base",
        "--settings",
        json.dumps(settings),
        "--base",
        str(prepared_tiny["tiny-dense"]),
    ]
    argv += ["--data", str(data), "--out", *outputs]
    # Per prompt's shard: 2 items; the direct prompt's 4 option rotations each, the cloze
    # cell's conditional and unconditional pass each.
    requests = {"direct": 8, "cot": 2, "cloze": 4}
    for flags, kept in (([], False), ([], True), (["--fresh"], False)):
        assert main([*argv, *flags]) == 0
        captured = capsys.readouterr()
        out = captured.out + captured.err
        for prompt, count in requests.items():
            assert f"{prompt}: {count if kept else 0} of {count} results read back" in out
        assert ("--fresh: discarded 3 shard(s) of earlier runs" in out) == bool(flags)
    monkeypatch.setenv("XLT_FRESH", "1")
    captured = main(argv), capsys.readouterr()
    assert captured[0] == 0 and "--fresh: discarded 3 shard(s)" in captured[1].out + captured[1].err
    assert len(pd.read_parquet(outputs[2])) == 2
