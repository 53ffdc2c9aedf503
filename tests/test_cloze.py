"""The cloze cell (each option's text scored after the passage, the question and the
answer phrase) and the choice cell's option rotations: their scores against plain
forward passes on the tiny models, their choices (normalisations, the debiased letter
choice, NaN), and what `xlt score` makes of them without a model."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from belebele_rows import ENGLISH, TINY_MODELS, items
from generations import assert_same_generations
from test_scoring import label_scores

from xlt.choices import OptionScore, cloze_choice, cloze_raw, debiased_choice, read_cloze, rotation_choices
from xlt.errors import XltError
from xlt.inference.engine import generate
from xlt.inference.predictions import prediction_frames
from xlt.inference.requests import build_requests, encode, encode_prompt, uses_chat_template
from xlt.languages import language_table
from xlt.models import ModelSpec, load_model, load_tokenizer
from xlt.paths import ACCURACY_COLUMNS, COT_COLUMNS, PREDICTION_COLUMNS, ROTATION_COLUMNS
from xlt.prompts import render, rotated
from xlt.scoring import accuracy_table, check_predictions, rescore


def full_sequence_scores(model, context_ids, continuations) -> list[float]:
    """The plain way: each continuation appended to the context, one unpadded forward
    pass each, the continuation's token log-probabilities summed."""
    import torch

    scores = []
    for ids in continuations:
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([context_ids + ids])).logits[0].float()
        logprobs = torch.log_softmax(logits[len(context_ids) - 1 : -1], dim=-1)
        scores.append(float(logprobs[torch.arange(len(ids)), torch.tensor(ids)].sum()))
    return scores


def test_the_cloze_prompt_is_passage_question_and_answer_phrase_without_options():
    item = items(1).iloc[0]
    prompt = render(item, ENGLISH, "cloze")
    assert prompt.user == f"Passage: {item['flores_passage']}\nQuestion: {item['question']}"
    assert prompt.completion_prefix == "Answer:"
    requests = build_requests(items(1), {"eng_Latn": ENGLISH}, "cloze", "continuations", 0)
    assert [(r.cells, r.unconditional) for r in requests] == [(("cloze",), False), ((), True)]
    assert requests[0].continuations == tuple(f" {item[f'mc_answer{k}']}" for k in range(1, 5))


def test_rotations_put_each_option_under_each_letter_once():
    item = items(1).iloc[0]
    shown = [[rotated(item, r)[f"mc_answer{k}"] for k in range(1, 5)] for r in range(4)]
    assert shown[1] == [item["mc_answer2"], item["mc_answer3"], item["mc_answer4"], item["mc_answer1"]]
    for k in range(4):
        assert sorted(row[k] for row in shown) == sorted(shown[0])


def loaded(prepared_tiny, name):
    spec = ModelSpec(name)
    return spec, load_tokenizer(prepared_tiny[name], spec), load_model(prepared_tiny[name], spec, dtype="float32")


@pytest.mark.parametrize("name", TINY_MODELS)
def test_cloze_loglikelihoods_equal_a_plain_forward_pass(prepared_tiny, name):
    """Conditional (after the cloze prompt, whose passage and question pass is shared
    with the item's direct and chain-of-thought prompts) and unconditional (after the
    answer phrase alone): each option's summed log-probability equals a forward pass
    over the same tokens, to 1e-5."""
    spec, tokenizer, model = loaded(prepared_tiny, name)
    frame, templates = items(4), {"eng_Latn": ENGLISH}
    requests = [
        *build_requests(frame, templates, "direct", "generate", 4),
        *build_requests(frame, templates, "cot", "generate", 6),
        *build_requests(frame, templates, "cloze", "continuations", 0),
    ]
    chat = uses_chat_template(spec, tokenizer)
    encoded = [encode(tokenizer, request, chat) for request in requests]
    results = generate(model, tokenizer, encoded, 3, progress=False)
    checked = 0
    for request, item, result in zip(requests, encoded, results):
        if request.job != "cloze":
            continue
        pieces = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in request.continuations]
        assert item.label_ids == pieces
        if request.unconditional:
            context = tokenizer("Answer:")["input_ids"]
        else:
            context = encode_prompt(
                tokenizer, render(frame.set_index("item_id").loc[request.item_id], ENGLISH, "cloze"), chat
            )
            assert tokenizer.decode(context).endswith("Answer:") and "A. " not in tokenizer.decode(context)
        assert item.input_ids == context
        assert result.label_logprobs == pytest.approx(full_sequence_scores(model, context, pieces), abs=1e-5)
        assert result.label_tokens == [len(ids) for ids in pieces]
        checked += 1
    assert checked == 2 * len(frame)
    cloze = prediction_frames(requests, results, name, "base")["cloze"]
    assert list(cloze.columns) == [*PREDICTION_COLUMNS, *COT_COLUMNS]
    conditional = [r for q, r in zip(requests, results) if q.job == "cloze" and not q.unconditional]
    alone = [r for q, r in zip(requests, results) if q.unconditional]
    for raw, result, unconditional, (_, item) in zip(cloze["raw_output"], conditional, alone, frame.iterrows()):
        options = read_cloze(raw)
        assert [o.logprob for o in options] == result.label_logprobs
        assert [o.unconditional_logprob for o in options] == unconditional.label_logprobs
        assert [o.chars for o in options] == [1 + len(item[f"mc_answer{k}"]) for k in range(1, 5)]


@pytest.mark.parametrize("name", TINY_MODELS)
@pytest.mark.parametrize("scoring", ["generate", "loglik"])
def test_rotated_letter_scores_equal_separately_rendered_prompts(prepared_tiny, name, scoring):
    """The choice cell's letters under each rotation, from the item's shared prompt
    pass, equal the letters' scores of the four rotated direct prompts rendered and run
    one by one; the rotation columns follow from them."""
    spec, tokenizer, model = loaded(prepared_tiny, name)
    frame = items(3)
    requests = build_requests(frame, {"eng_Latn": ENGLISH}, "direct", scoring, 4)
    chat = uses_chat_template(spec, tokenizer)
    encoded = [encode(tokenizer, request, chat) for request in requests]
    results = generate(model, tokenizer, encoded, 2, progress=False)
    letters = encoded[-1].label_ids
    by_item: dict[str, list[list[float]]] = {}
    for request, result in zip(requests, results):
        if request.harness:
            continue
        item = frame.set_index("item_id").loc[request.item_id].to_dict() | {"item_id": request.item_id}
        alone = encode_prompt(tokenizer, render(rotated(item, request.rotation), ENGLISH, "direct"), chat)
        assert result.label_logprobs == pytest.approx(full_sequence_scores(model, alone, letters), abs=1e-5)
        by_item.setdefault(request.item_id, [None] * 4)[request.rotation] = result.label_logprobs
    choice = prediction_frames(requests, results, name, "base")["choice"]
    assert list(choice.columns) == [*PREDICTION_COLUMNS, *COT_COLUMNS, *ROTATION_COLUMNS]
    for _, row in choice.iterrows():
        rotations = by_item[row["item_id"]]
        assert row["parsed_choice"] == max(range(4), key=rotations[0].__getitem__) + 1
        assert json.loads(row["rotation_choices"]) == rotation_choices(rotations, "test")
        assert row["debiased_choice"] == debiased_choice(rotations)


def test_the_debiased_choice_removes_a_letter_prior():
    """A model that adds 5 to letter A everywhere and otherwise prefers option 3 picks
    A in every rotation (a different option each time), the debiased choice option 3."""
    knowledge = [0.0, -1.0, 1.0, -2.0]
    rotations = [[knowledge[(k + r) % 4] + (5.0 if k == 0 else 0.0) for k in range(4)] for r in range(4)]
    assert rotation_choices(rotations, "test") == [1, 2, 3, 4]
    assert debiased_choice(rotations) == 3
    with pytest.raises(XltError, match="NaN"):
        rotation_choices([[math.nan, 0, 0, 0], *rotations[1:]], "item x")


# per option: none -12, -6, -9, -20; token -1.2, -6, -1.5, -4; char -0.3, -1, -0.2, -2; pmi 8, 1, -5, 10
OPTIONS = (
    OptionScore(-12.0, 10, 40, -20.0),
    OptionScore(-6.0, 1, 6, -7.0),
    OptionScore(-9.0, 6, 45, -4.0),
    OptionScore(-20.0, 5, 10, -30.0),
)


def test_cloze_normalisations_and_nan():
    options = list(OPTIONS)
    assert cloze_choice(options, "none") == (2, None)
    assert cloze_choice(options, "token") == (1, None)
    assert cloze_choice(options, "char") == (3, None)
    assert cloze_choice(options, "pmi") == (4, None)
    assert read_cloze(cloze_raw(options)) == options
    lost = [OptionScore(math.nan, 10, 40, -20.0), *options[1:]]
    assert json.loads(cloze_raw(lost))[0]["logprob"] is None
    assert cloze_choice(read_cloze(cloze_raw(lost)), "char") == (
        None,
        "option 1's char-normalised log-probability is NaN",
    )
    # the unconditional score is read by pmi only
    assert cloze_choice([OptionScore(-12.0, 10, 40, math.nan), *options[1:]], "char") == (3, None)
    assert cloze_choice([OptionScore(-12.0, 10, 40, math.nan), *options[1:]], "pmi")[0] is None


LANGS = language_table(
    {
        "languages": {"eng_Latn": {"family": "Indo-European", "script": "Latn"}},
        "source_language": "eng_Latn",
        "related_families": ["Semitic"],
    }
)


def cloze_rows(scores: list[list[OptionScore]], answers: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": [f"l#{i}" for i in range(len(scores))],
            "lang": "eng_Latn",
            "model": "m",
            "variant": "base",
            "prompt": "cloze",
            "raw_output": [cloze_raw(options) for options in scores],
            "parsed_choice": pd.array([cloze_choice(options, "char")[0] for options in scores], dtype="Int64"),
            "answer": answers,
            "correct": [cloze_choice(options, "char")[0] == answer for options, answer in zip(scores, answers)],
            "n_prompt_tokens": 10,
            "n_output_tokens": 0,
        }
    )


def test_score_chooses_cloze_options_under_the_configured_normalisation():
    options = list(OPTIONS)
    frame = check_predictions(cloze_rows([options, options, options], [3, 2, 3]), "test")
    char = rescore(frame, None, "char")
    assert char["parsed_choice"].tolist() == [3, 3, 3] and char["correct"].tolist() == [True, False, True]
    pmi = rescore(frame.assign(forced_choice=pd.array([3, 3, 3], dtype="Int64")), None, "pmi")
    assert pmi["forced_choice"].tolist() == pmi["parsed_choice"].tolist() == [4, 4, 4]
    none = rescore(frame, None, "none")
    assert none["parsed_choice"].tolist() == [2, 2, 2] and none["correct"].tolist() == [False, True, False]
    table = accuracy_table(none, LANGS, confidence=0.95)
    assert table["accuracy"].tolist() == [pytest.approx(1 / 3)]
    assert table[["debiased_accuracy", "binding_consistency", "letter_prior"]].isna().all(axis=None)


def test_a_cloze_row_without_a_choice_stops_naming_it():
    """A NaN option score leaves no choice; counted wrong, it would lower the knowledge
    score unseen, so scoring and compare stop and name the row. An unconditional score
    that is missing matters only to pmi, the one normalisation that reads it."""
    options = list(OPTIONS)
    lost = [OptionScore(math.nan, 10, 40, -20.0), *options[1:]]
    frame = check_predictions(cloze_rows([options, lost], [3, 3]), "test")
    with pytest.raises(
        XltError,
        match=r"1 cloze row\(s\) have no choice under prompts.cloze_normalisation char: "
        r"m base eng_Latn item l#1: option 1's char-normalised log-probability is NaN",
    ):
        rescore(frame, None, "char")
    unconditional = [OptionScore(-12.0, 10, 40, math.nan), *options[1:]]
    frame = check_predictions(cloze_rows([options, unconditional], [3, 3]), "test")
    assert rescore(frame, None, "char")["parsed_choice"].tolist() == [3, 3]
    with pytest.raises(XltError, match="item l#1: option 1's pmi-normalised"):
        rescore(frame, None, "pmi")


def test_cloze_scores_above_zero_are_not_log_probabilities():
    """Probabilities written where log-probabilities belong (all above 0) would still
    choose an option, a different one: the row is named instead."""
    options = list(OPTIONS)
    as_probabilities = [
        OptionScore(math.exp(o.logprob), o.tokens, o.chars, math.exp(o.unconditional_logprob)) for o in options
    ]
    with pytest.raises(
        XltError, match=r"test: column raw_output, row 2 \(a cloze row\): option 1: logprob .* is above 0"
    ):
        check_predictions(cloze_rows([options, as_probabilities], [3, 3]), "test")
    infinite = [OptionScore(-12.0, 10, 40, math.inf), *options[1:]]
    with pytest.raises(XltError, match="row 1 .* option 1: unconditional_logprob inf is above 0"):
        check_predictions(cloze_rows([infinite], [3]), "test")


def test_a_damaged_cloze_row_is_named():
    options = [OptionScore(-1.0, 1, 2, -2.0)] * 4
    frame = cloze_rows([options, options], [1, 1])
    frame.loc[1, "raw_output"] = "Answer: A"
    with pytest.raises(XltError, match=r"^f.parquet: column raw_output, row 2 \(a cloze row\)"):
        check_predictions(frame, "f.parquet")


def choice_rows(rotations: list[list[int] | None], debiased: list[int | None], answers: list[int]) -> pd.DataFrame:
    n = len(rotations)
    return pd.DataFrame(
        {
            "item_id": [f"l#{i}" for i in range(n)],
            "lang": "eng_Latn",
            "model": "m",
            "variant": "base",
            "prompt": "choice",
            "raw_output": [label_scores(chosen[0] if chosen else 1) for chosen in rotations],
            "parsed_choice": pd.array([chosen[0] if chosen else None for chosen in rotations], dtype="Int64"),
            "answer": answers,
            "correct": [bool(chosen) and chosen[0] == answer for chosen, answer in zip(rotations, answers)],
            "n_prompt_tokens": 10,
            "n_output_tokens": 0,
            "debiased_choice": pd.array(debiased, dtype="Int64"),
            "rotation_choices": [json.dumps(chosen) if chosen else None for chosen in rotations],
        }
    )


def test_accuracy_gains_the_rotations_diagnostics():
    # item 0: letter A every time (options 1, 2, 3, 4); item 1: option 2 every time
    # (letters B, A, D, C); item 2: option 3 every time (letters C, B, A, D), debiased 1
    frame = check_predictions(choice_rows([[1, 2, 3, 4], [2, 2, 2, 2], [3, 3, 3, 3]], [1, 2, 1], [1, 2, 2]), "test")
    table = accuracy_table(rescore(frame, None), LANGS, confidence=0.95)
    assert list(table.columns) == list(ACCURACY_COLUMNS)
    row = table.iloc[0]
    assert row["debiased_accuracy"] == pytest.approx(2 / 3)
    assert row["binding_consistency"] == pytest.approx(2 / 3)
    assert row["letter_prior"] == pytest.approx(6 / 12)  # A: 4 + 1 + 1 of 12 chosen letters
    # a row without its rotations where the others have them would count wrong unseen
    with pytest.raises(XltError, match="test: column debiased_choice, row 3: null where other choice rows have one"):
        check_predictions(choice_rows([[1, 2, 3, 4], [2, 2, 2, 2], None], [1, 2, None], [1, 2, 2]), "test")
    older = check_predictions(frame.drop(columns=list(ROTATION_COLUMNS)), "test")
    assert (
        accuracy_table(older, LANGS, confidence=0.95)[["debiased_accuracy", "binding_consistency", "letter_prior"]]
        .isna()
        .all(axis=None)
    )
    bad = frame.assign(rotation_choices=["[1, 2, 3]", "[2, 2, 2, 2]", "[3, 3, 3, 3]"])
    with pytest.raises(XltError, match="column rotation_choices, row 1"):
        check_predictions(bad, "test")


@pytest.mark.parametrize("name", TINY_MODELS)
def test_rotations_and_cloze_leave_the_other_cells_as_they_were(prepared_tiny, name):
    """The predict job with the rotations and the cloze prompts in each item's prompt
    pass writes the direct, cot and choice cells as the job without them: the same
    tokens, stops and choices, label log-probabilities to float32 rounding."""
    spec, tokenizer, model = loaded(prepared_tiny, name)
    frame, templates = items(4), {"eng_Latn": ENGLISH}
    requests = [
        *build_requests(frame, templates, "direct", "generate", 4),
        *build_requests(frame, templates, "cot", "generate", 8),
        *build_requests(frame, templates, "cloze", "continuations", 0),
    ]
    before = [request for request in requests if request.job != "cloze" and not request.rotation]
    chat = uses_chat_template(spec, tokenizer)
    runs = {}
    for label, chosen in (("with", requests), ("without", before)):
        results = generate(model, tokenizer, [encode(tokenizer, r, chat) for r in chosen], 3, progress=False)
        runs[label] = (dict(zip(map(id, chosen), results)), prediction_frames(chosen, results, name, "base"))
    for request in before:
        new, old = runs["with"][0][id(request)], runs["without"][0][id(request)]
        assert (new.text, new.n_output_tokens, new.stop_reason) == (old.text, old.n_output_tokens, old.stop_reason)
        for scores, expected in ((new.label_logprobs, old.label_logprobs), (new.forced_logprobs, old.forced_logprobs)):
            assert scores == pytest.approx(expected, abs=1e-5)
    for cell in ("direct", "cot", "choice"):
        # the choice cell's raw_output holds the label log-probabilities, compared above
        columns = [
            column for column in (*PREDICTION_COLUMNS, *COT_COLUMNS) if column != "raw_output" or cell != "choice"
        ]
        assert runs["with"][1][cell][columns].equals(runs["without"][1][cell][columns])


def test_xlt_compare_reads_trees_with_and_without_the_new_cells(tmp_path):
    """A foreign tree with cloze cells and rotation columns compares, its cloze options
    chosen under the config's normalisation; the same tree without them (an older
    tree) compares too."""
    from test_scoring import CONFIG, write_tree

    from xlt.cli import main
    from xlt.scoring import load_predictions
    from xlt.simulate import Scenario, simulate_predictions, study_variants

    frame = simulate_predictions(
        {model: Scenario(n_items=20) for model in ("m1", "m2", "m3")},
        language_table(CONFIG),
        variants=study_variants(CONFIG),
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {**CONFIG, "data": {}, "models": {"m1": {"id": "org/m1"}}, "prompts": {"cloze_normalisation": "pmi"}}
        )
    )
    older = tmp_path / "older"
    write_tree(older, frame)
    assert (
        main(["compare", "--predictions", str(older), "--config", str(config), "--out", str(tmp_path / "older-stats")])
        == 0
    )
    # option 4 wins under pmi, option 3 under char
    options = list(OPTIONS)
    cloze = frame[frame["prompt"] == "direct"].assign(
        prompt="cloze", raw_output=cloze_raw(options), parsed_choice=3, n_output_tokens=0
    )
    cloze["correct"] = cloze["answer"] == 3
    choice = frame[frame["prompt"] == "direct"].assign(
        prompt="choice", parsed_choice=1, raw_output=label_scores(1), debiased_choice=4, rotation_choices="[1, 2, 3, 4]"
    )
    choice["correct"] = choice["parsed_choice"] == choice["answer"]
    newer = tmp_path / "newer"
    write_tree(newer, pd.concat([frame, cloze, choice], ignore_index=True))
    assert (
        main(["compare", "--predictions", str(newer), "--config", str(config), "--out", str(tmp_path / "newer-stats")])
        == 0
    )
    loaded = load_predictions(newer)
    assert set(loaded["prompt"]) == {"direct", "cot", "choice", "cloze"}
    assert (loaded.loc[loaded["prompt"] == "choice", "debiased_choice"] == 4).all()


def test_tail_slices_skip_one_token_labels_and_pass_labels_of_like_length_together(monkeypatch):
    from xlt.inference import forward

    monkeypatch.setattr(forward, "TAIL_PASS_CONTEXT_TOKENS", 300)
    monkeypatch.setattr(forward, "TAIL_PASS_LOGITS", 60)
    lengths = [1, 5, 2, 1, 3, 2, 9, 2]
    # context 100: three rows a pass; vocabulary 10: rows x (length - 1) x 10 <= 60
    assert forward.tail_slices(lengths, context=100, vocabulary=10) == [[2, 5, 7], [4], [1], [6]]
    monkeypatch.setattr(forward, "TAIL_PASS_LOGITS", 2**20)
    assert forward.tail_slices(lengths, context=100, vocabulary=10) == [[2, 5, 7], [4, 1, 6]]
    assert forward.tail_slices([1, 1, 1, 1], context=100, vocabulary=10) == []


@pytest.mark.parametrize("budget", [1, 700])
def test_label_tails_scored_in_slices_score_as_one_pass(prepared_tiny, monkeypatch, budget):
    """Label tails go through the model in slices bounded by the context tokens they
    copy (one row a pass, or a few, with slices cutting across items): the scores stay
    a plain forward pass's."""
    from xlt.inference import forward

    monkeypatch.setattr(forward, "TAIL_PASS_CONTEXT_TOKENS", budget)
    spec, tokenizer, model = loaded(prepared_tiny, "tiny-dense")
    requests = build_requests(items(3), {"eng_Latn": ENGLISH}, "cloze", "continuations", 0)
    encoded = [encode(tokenizer, request, uses_chat_template(spec, tokenizer)) for request in requests]
    copied = []  # the rows of each tail pass
    original = forward.copy_rows
    monkeypatch.setattr(forward, "copy_rows", lambda cache, rows: copied.append(len(rows)) or original(cache, rows))
    results = generate(model, tokenizer, encoded, 3, progress=False)
    # 3 items x 4 options, after the cloze prompt and after the answer phrase alone: each
    # one with more than one token is a row of a tail pass
    tails = sum(len(ids) > 1 for item in encoded for ids in item.label_ids)
    assert tails and sum(copied) == tails
    assert set(copied) == {1} if budget == 1 else max(copied) > 1
    for item, result in zip(encoded, results):
        assert result.label_logprobs == pytest.approx(
            full_sequence_scores(model, item.input_ids, item.label_ids), abs=1e-5
        )


def test_rows_fed_in_slices_decode_as_rows_fed_together(prepared_tiny, monkeypatch):
    """The rows' own remaining tokens fed one row a pass (FEED_PASS_CONTEXT_TOKENS = 1)
    give the tokens, stops and label scores of rows fed together."""
    from xlt.inference import engine

    spec, tokenizer, model = loaded(prepared_tiny, "tiny-dense")
    frame, templates = items(3), {"eng_Latn": ENGLISH}
    requests = [
        *build_requests(frame, templates, "direct", "generate", 4),
        *build_requests(frame, templates, "cot", "generate", 6),
    ]
    requests += build_requests(frame, templates, "cloze", "continuations", 0)
    encoded = [encode(tokenizer, request, uses_chat_template(spec, tokenizer)) for request in requests]
    together = generate(model, tokenizer, encoded, 3, progress=False)
    monkeypatch.setattr(engine, "FEED_PASS_CONTEXT_TOKENS", 1)
    apart = generate(model, tokenizer, encoded, 3, progress=False)
    assert_same_generations(together, apart)
