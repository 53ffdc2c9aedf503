"""Format diagnostics in accuracy.csv, their warnings in the report, and the
knowledge/format decomposition of the gains (issue 13)."""

import json

import numpy as np
import pandas as pd
import pytest
from test_scoring import label_scores, write_tree

from xlt import report
from xlt.cli import main
from xlt.errors import XltError
from xlt.languages import language_table
from xlt.paths import PREDICTION_COLUMNS
from xlt.report import format_warnings
from xlt.scoring import accuracy_table, check_predictions, rescore
from xlt.stats.compare import compare
from xlt.stats.settings import StatsSettings

CONFIG = {
    "languages": {
        "arb_Arab": {"family": "Semitic", "script": "Arab"},
        "heb_Hebr": {"family": "Semitic", "script": "Hebr"},
        "eng_Latn": {"family": "Indo-European", "script": "Latn"},
        "tur_Latn": {"family": "Turkic", "script": "Latn"},
    },
    "source_language": "arb_Arab",
    "related_families": ["Semitic"],
}
LANGUAGES = language_table(CONFIG)
LETTERS = np.array(list("ABCD"))


def cell(model, variant, prompt, lang, answer, choice, n_output_tokens=3, **extra) -> pd.DataFrame:
    """One cell's predictions: `choice` per item (0 for no stated answer)."""
    choice = np.asarray(choice)
    parsed = pd.array(np.where(choice > 0, choice, 0), dtype="Int64")
    parsed[choice == 0] = pd.NA
    raw = (
        [label_scores(chosen) for chosen in choice]
        if prompt == "choice"
        else np.where(choice > 0, np.char.add("Answer: ", LETTERS[np.maximum(choice, 1) - 1]), "Let me think")
    )
    frame = pd.DataFrame(
        {
            "item_id": [f"p{i // 2:03d}#{i % 2 + 1}" for i in range(len(answer))],
            "lang": lang,
            "model": model,
            "variant": variant,
            "prompt": prompt,
            "raw_output": raw,
            "parsed_choice": parsed,
            "answer": answer,
            "correct": (parsed == answer).fillna(False).to_numpy(bool),
            "n_prompt_tokens": 100,
            "n_output_tokens": n_output_tokens,
        }
    )
    return frame.assign(**extra)


def test_diagnostics_of_a_hand_made_cell():
    answer = np.array([1, 2, 3, 4, 1, 2, 3, 4])
    stated = np.array([1, 1, 1, 1, 1, 1, 0, 0])  # two right, six stated, two without an answer
    forced = pd.array([1, 1, 1, 1, 1, 1, 3, 2], dtype="Int64")  # the forced pass gets item 7 right
    frame = cell("m", "base", "cot", "eng_Latn", answer, stated, n_output_tokens=[9, 9, 9, 9, 9, 9, 96, 40])
    frame = frame.assign(stop_reason=["answer"] * 6 + ["budget", "eos"], forced_choice=forced)
    frame.loc[7, "raw_output"] = "  \n"
    row = accuracy_table(check_predictions(frame, "test"), LANGUAGES, confidence=0.95, budgets={"cot": 96}).iloc[0]
    assert row["accuracy"] == pytest.approx(2 / 8)
    assert row["forced_accuracy"] == pytest.approx(3 / 8)
    assert row["accuracy_given_parsed"] == pytest.approx(2 / 6)
    assert row["top_choice_share"] == pytest.approx(1.0)
    assert row["truncation_rate"] == pytest.approx(1 / 8)
    assert row["empty_rate"] == pytest.approx(1 / 8)


def test_truncation_without_stop_reason_needs_the_budget():
    answer = np.array([1, 2, 3, 4])
    frame = cell("m", "base", "cot", "eng_Latn", answer, [1, 0, 0, 0], n_output_tokens=[20, 96, 96, 50])
    known = accuracy_table(frame, LANGUAGES, confidence=0.95, budgets={"cot": 96}).iloc[0]
    unknown = accuracy_table(frame, LANGUAGES, confidence=0.95).iloc[0]
    assert known["truncation_rate"] == pytest.approx(0.5)
    assert np.isnan(unknown["truncation_rate"])
    assert unknown["forced_accuracy"] == unknown["accuracy"] == pytest.approx(0.25)


def test_bad_cot_columns_are_named():
    frame = cell("m", "base", "cot", "eng_Latn", np.array([1, 2]), [1, 2], stop_reason=["answer", "tired"])
    with pytest.raises(XltError, match="column stop_reason, row 2: 'tired'; allowed: answer, eos, budget"):
        check_predictions(frame, "f.parquet")
    frame = cell("m", "base", "cot", "eng_Latn", np.array([1, 2]), [1, 2], forced_choice=[1, 7])
    with pytest.raises(XltError, match="column forced_choice, row 2: 7; allowed: 1-4 or null"):
        check_predictions(frame, "f.parquet")


def test_rescore_keeps_choice_rows_and_updates_forced_answers():
    answer = np.array([1, 2])
    choice = cell("m", "base", "choice", "eng_Latn", answer, [2, 2]).assign(raw_output='{"A": -0.1, "B": -0.2}')
    cot = cell("m", "base", "cot", "eng_Latn", answer, [0, 0], forced_choice=pd.array([3, 3], dtype="Int64"))
    cot.loc[0, "raw_output"] = "Reasoning. Answer: A."
    data = pd.DataFrame(
        {
            "lang": "eng_Latn",
            "item_id": cot["item_id"],
            "mc_answer1": "x",
            "mc_answer2": "y",
            "mc_answer3": "z",
            "mc_answer4": "w",
        }
    )
    rescored = rescore(pd.concat([choice, cot], ignore_index=True), data)
    assert rescored["parsed_choice"].tolist()[:2] == [2, 2]
    assert rescored["parsed_choice"].tolist()[2] == 1
    assert rescored["forced_choice"].tolist()[2:] == [1, 3]


def _tree(rng, n_items, direct_choice) -> pd.DataFrame:
    """Two models x base/ft x direct/choice x four languages; `direct_choice(variant)`
    gives a cell's stated answers from its answers."""
    answer = 1 + rng.permutation(np.arange(n_items) % 4)
    frames = []
    for model in ("m1", "m2"):
        for variant in ("base", "ft"):
            for lang in LANGUAGES:
                frames.append(cell(model, variant, "direct", lang, answer, direct_choice(variant, answer)))
                frames.append(
                    cell(model, variant, "cot", lang, answer, direct_choice(variant, answer), n_output_tokens=96)
                )
    return pd.concat(frames, ignore_index=True)


def test_a_constant_letter_cell_is_flagged_and_a_uniform_one_is_not():
    rng = np.random.default_rng(0)

    def stated(variant, answer):
        if variant == "ft":
            return np.where(np.arange(len(answer)) % 4 < 3, 1, 3)  # A for 75%, C for the rest, never B or D
        return 1 + rng.integers(0, 4, len(answer))  # uniform

    items = _tree(rng, 64, stated)
    warnings = format_warnings(accuracy_table(items, LANGUAGES, confidence=0.95, budgets={"direct": 8, "cot": 96}))
    constant = [line for line in warnings if "same label" in line]
    assert len(constant) == 4  # m1 and m2, fine-tuned, direct and CoT
    assert all("fine-tuned" in line and "base" not in line for line in constant)
    assert all(all(code in line for code in LANGUAGES) for line in constant)
    assert any(line.startswith("m1, fine-tuned, direct prompt") for line in constant)
    truncated = [line for line in warnings if "token budget" in line]
    assert len(truncated) == 4  # every CoT cell used its whole budget
    assert all("CoT prompt" in line for line in truncated)


def _planted_format_gain(n_items=160, seed=1) -> pd.DataFrame:
    """Fine-tuning changes only the format: the choice cells of base and fine-tuned
    have the same accuracy, the base model states an answer for 30% of the items
    and the fine-tuned one for all, each the format-free answer."""
    rng = np.random.default_rng(seed)
    answer = 1 + np.arange(n_items) % 4
    frames = []
    for model in ("m1", "m2", "m3"):
        for lang in LANGUAGES:
            base_knows = rng.random(n_items) < 0.5
            for variant in ("base", "ft"):
                # The same number of items known, not the same items: the knowledge part
                # is 0 but varies over items, so its interval has a width.
                knows = base_knows if variant == "base" else rng.permutation(base_knows)
                choice = np.where(knows, answer, 1 + answer % 4)
                frames.append(cell(model, variant, "choice", lang, answer, choice, n_output_tokens=0))
                stated = choice if variant == "ft" else np.where(rng.random(n_items) < 0.3, choice, 0)
                frames.append(cell(model, variant, "direct", lang, answer, stated))
                reasoned = choice if variant == "ft" else np.where(rng.random(n_items) < 0.4, choice, 0)
                frames.append(
                    cell(model, variant, "cot", lang, answer, reasoned, forced_choice=pd.array(choice, dtype="Int64"))
                )
    return pd.concat(frames, ignore_index=True)


def test_a_planted_format_only_gain_lands_in_the_format_part():
    comparisons = compare(_planted_format_gain(), LANGUAGES, StatsSettings(bootstrap_samples=500))
    effects = comparisons.effects.set_index(["model", "prompt", "effect"])
    for model in ("m1", "m2", "m3"):
        for group in ("source", "related", "control", "targets"):
            total = effects.loc[(model, "direct", f"ft_gain_{group}")]
            knowledge = effects.loc[(model, "direct", f"ft_gain_choice_{group}")]
            form = effects.loc[(model, "direct", f"ft_gain_format_{group}")]
            assert knowledge["estimate"] + form["estimate"] == pytest.approx(total["estimate"], abs=1e-12)
            assert knowledge["ci_low"] <= 0 <= knowledge["ci_high"]
            assert form["ci_low"] > 0.15  # the planted gain: 0.5 - 0.3 x 0.5 = 0.35
            assert form["estimate"] == pytest.approx(total["estimate"] - knowledge["estimate"], abs=1e-12)
        share = effects.loc[(model, "direct", "ft_gain_format_share_targets")]
        assert 0.7 < share["estimate"] < 1.3 and share["ci_low"] > 0.5
        # Forced answers are the format-free answers here: the CoT gain's knowledge part
        # is forced CoT minus choice, 0 in expectation; its parts add up to the gain.
        cot = [
            effects.loc[(model, "cot", f"cot_gain{part}_related"), "estimate"] for part in ("", "_choice", "_format")
        ]
        assert cot[1] + cot[2] == pytest.approx(cot[0], abs=1e-12)
    assert np.isnan(
        effects.loc[("m1", "direct", "ft_gain_format_related"), "p_value"]
    )  # a part of a gain is estimated, not tested
    alignment = comparisons.alignment.set_index("statistic")
    assert np.isfinite(alignment.loc["pearson:ft_gain_format~cot_gain:models", "estimate"])


def test_compare_without_choice_cells_says_which_rows_are_missing(tmp_path):
    frame = _planted_format_gain(n_items=40)
    frame = frame[frame["prompt"] != "choice"].drop(columns=["forced_choice"])
    root = tmp_path / "predictions"
    write_tree(root, frame.loc[:, list(PREDICTION_COLUMNS)])
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({**CONFIG, "data": {}, "models": {"m1": {"id": "org/m1"}}}))
    assert main(["compare", "--predictions", str(root), "--config", str(config), "--out", str(tmp_path / "stats")]) == 0
    effects = pd.read_csv(tmp_path / "stats" / "effects.csv")
    assert "ft_gain_related" in set(effects["effect"])
    assert not effects["effect"].str.contains("_choice_|_format_").any()
    notes = pd.read_csv(tmp_path / "stats" / "notes.csv").fillna("")
    missing = notes[notes["note"].str.startswith("missing:")]
    assert set(zip(missing["model"], missing["prompt"])) >= {("m1", "direct"), ("m2", "cot"), ("m3", "direct")}
    assert missing["note"].str.contains("base/choice/arb_Arab").any()
    assert missing["note"].str.contains("forced_choice").any()
    alignment_note = notes[
        (notes["table"] == "alignment") & (notes["effect"] == "pearson:ft_gain_format~cot_gain:models")
    ]["note"].iloc[0]
    assert alignment_note.startswith("missing: no choice cell for m1, m2, m3")
    alignment = pd.read_csv(tmp_path / "stats" / "alignment.csv")
    assert not alignment["statistic"].str.contains("ft_gain_format").any()
    assert alignment["statistic"].str.startswith("pearson:ft_gain~cot_gain").any()


def test_the_diagnostics_figure_frames_the_cells_it_warns_about():
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rng = np.random.default_rng(2)
    items = _tree(rng, 16, lambda variant, answer: np.ones(len(answer), int) if variant == "ft" else answer)
    accuracy = accuracy_table(items, LANGUAGES, confidence=0.95, budgets={"direct": 8, "cot": 96})
    figure = report.diagnostics_figure(accuracy, LANGUAGES)
    panels = dict(zip((column for column, _ in report.DIAGNOSTICS), figure.axes))
    framed = {column: sum(isinstance(patch, Rectangle) for patch in ax.patches) for column, ax in panels.items()}
    assert framed["top_choice_share"] == 2 * 2 * len(LANGUAGES)  # m1, m2 fine-tuned, direct and CoT
    assert framed["truncation_rate"] == 2 * 2 * len(LANGUAGES)  # every CoT cell
    assert framed["parse_rate"] == 0
    printed = [text.get_text() for text in panels["top_choice_share"].texts]
    assert printed.count("100") == 2 * 2 * len(LANGUAGES)
    plt.close(figure)
