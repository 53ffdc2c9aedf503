"""The knowledge part of a gain read three ways (issue 22): from the cloze score (the
default), from the debiased letter choice, and against the format-only control; a
knowledge score at chance or one label is named, never read as "knowledge +0"; trees
without these cells still compare, and notes.csv says which rows are missing and why."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_diagnostics import LANGUAGES, cell

from xlt.stats.compare import compare
from xlt.stats.settings import StatsSettings

SETTINGS = StatsSettings(bootstrap_samples=500, seed=3)
GROUPS = ("source", "related", "control", "targets")


def _tree(knowledge_gain: float, n_items: int = 160, seed: int = 1) -> pd.DataFrame:
    """One model. Fine-tuning teaches the letters: the base model's choice cell answers A
    for every item (letter prior), its direct prompt states an answer for 30% of the
    items; the fine-tuned one binds letters to what it knows and always answers. The
    control adapter learns the letters too, not the answers. The cloze score (what the
    model knows of the option texts) is the same for base and fine-tuned, different
    items, unless `knowledge_gain` adds to what the fine-tuned model knows."""
    rng = np.random.default_rng(seed)
    answer = 1 + np.arange(n_items) % 4
    wrong = 1 + answer % 4
    frames = []
    for lang in LANGUAGES:
        base_knows = rng.random(n_items) < 0.5
        knows = {"base": base_knows, "ctl": rng.permutation(base_knows)}
        knows["ft"] = rng.permutation(base_knows) | (rng.random(n_items) < knowledge_gain)
        for variant, known in knows.items():
            cloze = np.where(known, answer, wrong)
            frames.append(
                cell(
                    "m",
                    variant if variant != "ctl" else "ctl-arb_Arab",
                    "cloze",
                    lang,
                    answer,
                    cloze,
                    n_output_tokens=0,
                )
            )
            letters = np.ones(n_items, int) if variant == "base" else cloze
            debiased = (
                np.where(rng.random(n_items) < 0.5, cloze, 1 + rng.integers(0, 4, n_items))
                if variant == "base"
                else cloze
            )
            frames.append(
                cell(
                    "m",
                    variant if variant != "ctl" else "ctl-arb_Arab",
                    "choice",
                    lang,
                    answer,
                    letters,
                    n_output_tokens=0,
                    debiased_choice=debiased,
                )
            )
            stated = np.where(rng.random(n_items) < 0.3, cloze, 0) if variant == "base" else cloze
            for prompt in ("direct", "cot"):
                frames.append(cell("m", variant if variant != "ctl" else "ctl-arb_Arab", prompt, lang, answer, stated))
    frame = pd.concat(frames, ignore_index=True)
    frame["debiased_choice"] = frame["debiased_choice"].astype("Int64")
    return frame


def _compare(items: pd.DataFrame):
    from xlt.stats.sources import source_items

    comparisons = compare(source_items(items, "ft", "ctl-arb_Arab"), LANGUAGES, SETTINGS)
    return comparisons.effects.set_index(["prompt", "effect"]), comparisons.notes


def test_a_gain_of_letter_prior_and_binding_alone_is_format_under_the_cloze_reading():
    effects, notes = _compare(_tree(knowledge_gain=0.0))
    for group in GROUPS:
        total = (
            effects.loc[("direct", f"ft_gain_{group}")]
            if group != "targets"
            else effects.loc[("direct", "ft_gain_targets")]
        )
        knowledge = effects.loc[("direct", f"ft_gain_knowledge_cloze_{group}")]
        form = effects.loc[("direct", f"ft_gain_format_cloze_{group}")]
        assert knowledge["ci_low"] <= 0 <= knowledge["ci_high"]
        assert form["ci_low"] > 0.15  # the planted gain: 0.5 - 0.3 x 0.5 = 0.35
        assert knowledge["estimate"] + form["estimate"] == pytest.approx(total["estimate"], abs=1e-12)
        # The control learnt the same letters: the fine-tuned model gains nothing over it.
        control = effects.loc[("direct", f"ft_gain_knowledge_control_{group}")]
        assert control["ci_low"] <= 0 <= control["ci_high"]
    over = effects.loc[("direct", "ft_gain_over_control_related")]
    assert over["ci_low"] <= 0 <= over["ci_high"] and 0 <= over["p_value"] <= 1 and np.isfinite(over["p_adjusted"])
    assert effects.loc[("direct", "control_gain_related"), "ci_low"] > 0.15
    # The letter score of the base model is one letter: its reading is named unreadable,
    # and the cloze reading is not.
    by_effect = notes.set_index(["prompt", "effect"])["note"]
    assert "base/choice/heb_Hebr one label for 100% of items" in by_effect[("direct", "ft_gain_choice_related")]
    assert "not evidence of knowledge +0" in by_effect[("direct", "ft_gain_choice_related")]
    assert "unreadable" not in by_effect[("direct", "ft_gain_knowledge_cloze_related")]


def test_a_planted_knowledge_gain_lands_in_the_cloze_knowledge_part():
    effects, _ = _compare(_tree(knowledge_gain=0.6))
    for group in GROUPS:
        knowledge = effects.loc[("direct", f"ft_gain_knowledge_cloze_{group}")]
        assert knowledge["ci_low"] > 0.15  # 0.5 + 0.5 x 0.6 = 0.8 known after, 0.5 before
        # ...and the gain over the control is that knowledge too.
        assert effects.loc[("direct", f"ft_gain_knowledge_control_{group}"), "ci_low"] > 0.15
    assert effects.loc[("direct", "ft_gain_over_control_related"), "p_value"] < 0.01


def test_cells_that_agree_on_every_item_give_no_interval_and_no_equivalence():
    """Issue 24: a fine-tuned CoT cell that never answers, like its control's, agrees with
    it on every item (both wrong): the gain over the control and its knowledge reading are
    0 on every item. Their bootstrap intervals were [0, 0] and the TOST called them
    equivalent; there is no spread to base either on, so NaN, with a note saying why."""
    items = _tree(knowledge_gain=0.0, n_items=60)
    silent = items["variant"].isin(["ft", "ctl-arb_Arab"]) & (items["prompt"] == "cot")
    items.loc[silent, "parsed_choice"] = pd.NA
    items.loc[silent, "correct"] = False
    effects, notes = _compare(items)
    by_effect = notes.set_index(["prompt", "effect"])["note"]
    for group in ("source", "related", "control"):
        over = effects.loc[("cot", f"ft_gain_over_control_{group}")]
        assert (
            over["estimate"] == 0
            and over[["ci_low", "ci_high", "equivalence_p", "equivalence_ci_low", "equivalence_ci_high"]].isna().all()
        )
        assert over["p_value"] == 1  # no item differs: the sign-flip p stands
        assert "no interval: every resample gives +0.000" in by_effect[("cot", f"ft_gain_over_control_{group}")]
        assert "no TOST" in by_effect[("cot", f"ft_gain_over_control_{group}")]
    for group in GROUPS:
        knowledge = effects.loc[("cot", f"ft_gain_knowledge_control_{group}")]
        assert knowledge["estimate"] == 0 and knowledge[["ci_low", "ci_high"]].isna().all()
        assert "no interval" in by_effect[("cot", f"ft_gain_knowledge_control_{group}")]
    # No interval anywhere is zero-width; the direct prompt's rows are computed as before.
    finite = effects[["ci_low", "ci_high"]].notna().all(axis=1)
    assert not (finite & (effects["ci_low"] == effects["ci_high"])).any()
    assert effects.loc[("direct", "ft_gain_over_control_related"), ["ci_low", "ci_high", "equivalence_p"]].notna().all()


def test_a_tree_without_cloze_rotations_or_control_still_compares_and_says_what_is_missing():
    items = _tree(knowledge_gain=0.0)
    older = items[(items["prompt"] != "cloze") & (items["variant"] != "ctl-arb_Arab")].drop(columns="debiased_choice")
    effects, notes = _compare(older)
    assert ("direct", "ft_gain_related") in effects.index and ("direct", "ft_gain_choice_related") in effects.index
    names = effects.index.get_level_values("effect")
    assert not names.str.contains("knowledge|over_control|control_gain").any()
    missing = notes[notes["note"].str.startswith("missing:")].set_index(["prompt", "effect"])["note"]
    assert "no cloze reading" in missing[("direct", "ft_gain_knowledge_cloze_*, ft_gain_format_cloze_*")]
    assert "the cloze cell" in missing[("direct", "ft_gain_knowledge_cloze_*, ft_gain_format_cloze_*")]
    assert "option rotations" in missing[("cot", "ft_gain_knowledge_debiased_*, ft_gain_format_debiased_*")]
    assert "format-only control" in missing[("direct", "ft_gain_over_control_*, control_gain_*")]
    assert "format-only control" in missing[("direct", "ft_gain_knowledge_control_*, ft_gain_format_control_*")]
    # Without the letter-choice cells the gain over the targets comes with the cloze reading.
    effects, _ = _compare(items[items["prompt"] != "choice"])
    assert ("direct", "ft_gain_targets") in effects.index and ("direct", "ft_gain_choice_targets") not in effects.index
    assert effects.index.get_level_values("effect").tolist().count("ft_gain_targets") == 2  # direct and CoT


def test_summary_states_each_reading_with_intervals_and_whether_they_agree():
    from xlt.report import knowledge_lines

    effects, notes = _compare(_tree(knowledge_gain=0.0))
    line = knowledge_lines(effects.reset_index().assign(model="m"), notes, ["m"])[0]
    assert line.startswith("m: fine-tuning gain on the targets (direct prompt) +")
    cloze = effects.loc[("direct", "ft_gain_knowledge_cloze_targets")]
    assert (
        "by the cloze score (option texts, no letters) (default) the knowledge part is "
        f"{100 * cloze['estimate']:+.1f} points".replace("-", "−")
        in line
    )
    # The base model's letter score is one letter: named, and not read as knowledge +0.
    assert (
        "by the letter choice at the answer position" in line
        and "one label for 100% of items: not evidence of knowledge +0" in line
    )
    assert (
        "that score is at chance or one label in 3 cell(s): base/choice/heb_Hebr one label for 100% of "
        "items, base/choice/eng_Latn" in line
    )
    # Cloze and control see no knowledge gain; the debiased letters (binding learnt) a gain.
    assert "the readings disagree: cloze no detectable change, debiased a gain, control no detectable change" in line
    assert "the control adapter's own gain (format alone) is +" in line
    planted = knowledge_lines(_compare(_tree(knowledge_gain=0.6))[0].reset_index().assign(model="m"), None, ["m"])[0]
    assert (
        "the readings cloze, debiased, control, choice agree: a gain in knowledge" in planted
    )  # no notes given: none named unreadable


def test_the_control_adapters_gain_is_named_after_its_own_group():
    """A tree whose control languages have no cells (allowed missing) has the control
    adapter's gain on the related targets alone: it is said of them, not of the controls."""
    from xlt.report import knowledge_lines

    items = _tree(knowledge_gain=0.0)
    effects, _ = _compare(items[items["lang"].map(lambda code: LANGUAGES[code].group != "control")])
    assert ("direct", "control_gain_related") in effects.index and (
        "direct",
        "control_gain_control",
    ) not in effects.index
    line = knowledge_lines(effects.reset_index().assign(model="m"), None, ["m"])[0]
    related = effects.loc[("direct", "control_gain_related"), "estimate"]
    said = f"the control adapter's own gain (format alone) is {100 * related:+.1f} points".replace("-", "−")
    assert said in line
    assert line.split(said, 1)[1].split(";")[0].split("] ", 1)[1].startswith("on related targets")
    assert "on controls" not in line


def test_a_tree_without_knowledge_cells_says_so_in_one_clause():
    """No cloze, choice or control cells: no gain over the targets either (it comes with a
    reading), and the line says which readings are missing, without an empty clause."""
    from xlt.report import knowledge_lines

    items = _tree(knowledge_gain=0.0)
    effects, _ = _compare(items[items["prompt"].isin(["direct", "cot"]) & items["variant"].isin(["base", "ft"])])
    line = knowledge_lines(effects.reset_index().assign(model="m"), None, ["m"])[0]
    assert line == "m: no cloze, debiased, control, choice reading (its cells are missing: notes.csv says which)."


def test_the_knowledge_figure_draws_each_measure_the_tree_holds():
    import matplotlib.pyplot as plt

    from xlt import report
    from xlt.scoring import accuracy_table

    items = _tree(knowledge_gain=0.0)
    accuracy = accuracy_table(items, LANGUAGES, confidence=0.95, budgets={"direct": 8, "cot": 96})
    figure = report.knowledge_figure(accuracy, LANGUAGES)
    assert len(figure.axes) == 3  # one model x base, fine-tuned, control
    assert [ax.get_title() for ax in figure.axes] == [
        "m · base model",
        "m · fine-tuned",
        "m · format-only control (arb_Arab)",
    ]
    # strict, letter choice and cloze over three groups; no rotations' columns in this table
    assert all(len(ax.patches) == 3 * 3 for ax in figure.axes)
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "debiased letter (not in this tree)" in legend and "cloze" in legend
    plt.close(figure)
    choice = accuracy["prompt"] == "choice"
    accuracy.loc[choice, "debiased_accuracy"] = 0.5
    accuracy.loc[choice, "binding_consistency"] = 0.4
    figure = report.knowledge_figure(accuracy, LANGUAGES)
    assert all(len(ax.patches) == 5 * 3 for ax in figure.axes)
    assert figure.axes[0].patches[-1].get_height() == pytest.approx(0.4)
    plt.close(figure)


def test_xlt_compare_reads_a_control_folder_and_checks_it_like_every_variant(tmp_path):
    """`xlt compare --predictions` on a tree with ctl-arb_Arab (the config's default
    control: its first source): the gain over the control is in effects.csv; a control
    cell lacking items stops, naming it, as any variant's would."""
    import json

    from test_diagnostics import CONFIG
    from test_scoring import write_tree

    from xlt.cli import main
    from xlt.config import load_config
    from xlt.errors import XltError
    from xlt.paths import PREDICTION_COLUMNS
    from xlt.scoring import load_predictions
    from xlt.stages import compare_items

    items = _tree(knowledge_gain=0.0, n_items=40)
    items = items[items["prompt"] != "cloze"].loc[:, list(PREDICTION_COLUMNS)]
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({**CONFIG, "data": {}, "models": {"m": {"id": "org/m"}}}))
    write_tree(tmp_path / "whole", items)
    assert (
        main(
            [
                "compare",
                "--predictions",
                str(tmp_path / "whole"),
                "--config",
                str(config),
                "--out",
                str(tmp_path / "stats"),
            ]
        )
        == 0
    )
    effects = pd.read_csv(tmp_path / "stats" / "effects.csv")
    assert {"ft_gain_over_control_related", "control_gain_control", "ft_gain_knowledge_control_targets"} <= set(
        effects["effect"]
    )
    short = items.drop(
        items.index[
            (items["variant"] == "ctl-arb_Arab") & (items["prompt"] == "direct") & (items["lang"] == "eng_Latn")
        ][:4]
    )
    write_tree(tmp_path / "short", short)
    with pytest.raises(XltError, match=r"m/ctl-arb_Arab/direct/eng_Latn.parquet \(36 of 40 items\)"):
        compare_items(
            load_predictions(tmp_path / "short"),
            load_config(config),
            False,
            "short",
            [tmp_path / "s" / name for name in ("e", "a", "g", "n")],
        )


def test_a_control_reading_from_adapters_that_answer_one_letter_is_named_unreadable():
    """The control reading is ft/direct - ctl/direct: where both adapters give one letter
    for every item its part is a difference of letter priors, and summary.md read it as
    "no detectable change in knowledge" (the probe's SmolLM2 Amharic, 100% one label)."""
    items = _tree(knowledge_gain=0.0)
    adapters = items["variant"].isin(["ft", "ctl-arb_Arab"]) & (items["prompt"] == "direct")
    items.loc[adapters, "parsed_choice"] = 1
    items.loc[adapters, "correct"] = items.loc[adapters, "answer"] == 1
    _, notes = _compare(items)
    by_effect = notes.set_index(["prompt", "effect"])["note"]
    control = by_effect[("direct", "ft_gain_knowledge_control_related")]
    assert "ft/direct/heb_Hebr one label for 100% of items" in control
    assert "ctl/direct/heb_Hebr one label for 100% of items" in control
    assert "unreadable" not in by_effect[("direct", "ft_gain_knowledge_cloze_related")]
    # summary.md: the control reading named, out of the agreement, which the readable ones state
    from xlt.report import knowledge_lines

    line = knowledge_lines(_compare(items)[0].reset_index().assign(model="m"), notes.assign(model="m"), ["m"])[0]
    assert "ft/direct/heb_Hebr one label for 100% of items" in line
    assert line.endswith("the readings disagree: cloze no detectable change, debiased a gain.")
    # ...and where the debiased letters are one label too, the one readable reading is said alone
    items.loc[items["prompt"] == "choice", "debiased_choice"] = 1
    effects, notes = _compare(items)
    line = knowledge_lines(effects.reset_index().assign(model="m"), notes.assign(model="m"), ["m"])[0]
    assert line.endswith("only the cloze reading is readable: no detectable change in knowledge.")
    # the same tree where the adapters answer: the control reading is readable
    _, notes = _compare(_tree(knowledge_gain=0.0))
    assert (
        "unreadable"
        not in notes.set_index(["prompt", "effect"])["note"][("direct", "ft_gain_knowledge_control_related")]
    )
