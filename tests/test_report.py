"""The report's plots and tables on studies drawn with known accuracies, of the paper's
size (seven models, nine languages) and of the test config's (two and three): every
value lands in its place, every axis is labelled, and no two pieces of text overlap or
leave the figure."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import yaml

from xlt import paths, report
from xlt.config import read_config_file, validate_config
from xlt.languages import language_table
from xlt.proximity import proximity_table
from xlt.proximity_report import proximity_figure
from xlt.scoring import accuracy_table
from xlt.simulate import Scenario, simulate_predictions
from xlt.stats.compare import compare
from xlt.stats.settings import StatsSettings

MARGIN = 0.05
# the verdicts' level and the proximity slope's margin (the schema's defaults)
LEVELS = {"alpha": 0.05, "proximity_margin": 0.1}


def simulated_study(repo, models: list[str] | None = None, langs: list[str] | None = None):
    """accuracy, effects, alignment, gains and languages of a study drawn with known
    accuracies, on the paper config's models and languages (or the first few)."""
    paper = validate_config(yaml.safe_load((repo / "config" / "paper.yaml").read_text()))
    languages = {code: meta for code, meta in paper["languages"].items() if langs is None or code in langs}
    study = {
        "languages": languages,
        "source_language": paper["source_languages"][0],
        "related_families": paper["related_families"],
    }
    languages = language_table(study)
    rng = np.random.default_rng(3)
    scenarios = {}
    for model in models or list(paper["models"]):
        base = rng.uniform(0.3, 0.8)
        gain = 0.6 * (0.85 - base)
        scenarios[model] = Scenario(n_items=24, baseline=base, ft_gain=gain, cot_gain=0.8 * gain, language_gain_sd=0.03)
    items = simulate_predictions(scenarios, languages, seed=3)
    comparisons = compare(items, languages, StatsSettings(bootstrap_samples=100))
    return (
        accuracy_table(items, languages, confidence=0.95),
        comparisons.effects,
        comparisons.alignment,
        comparisons.gains,
        languages,
    )


@pytest.fixture(scope="module")
def paper_sized(repo):
    """The paper's seven models and nine languages."""
    return simulated_study(repo)


@pytest.fixture(scope="module")
def small(repo):
    """Two models and three languages, like the test config."""
    return simulated_study(repo, ["qwen3-4b", "llama-3.1-8b"], ["arb_Arab", "heb_Hebr", "eng_Latn"])


def _drawn_texts(figure):
    """(text, corners in pixels) of every visible, non-empty text the figure draws; the
    corners follow the text's rotation."""
    from matplotlib.text import Text

    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    undrawn = set()
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks():
                if not low - 1e-9 <= tick.get_loc() <= high + 1e-9:
                    undrawn.update({tick.label1, tick.label2})
    drawn = []
    for text in figure.findobj(Text):
        if text in undrawn or not text.get_visible() or not text.get_text().strip():
            continue
        box = text.get_window_extent(renderer)
        angle = np.deg2rad(text.get_rotation())
        text.set_rotation(0)
        upright = text.get_window_extent(renderer)
        text.set_rotation(np.rad2deg(angle))
        width, height = upright.width, upright.height
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        half = np.array([[-width, -height], [width, -height], [width, height], [-width, height]]) / 2
        centre = np.array([(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2])
        drawn.append((text.get_text(), centre + half @ rotation.T))
    return drawn


def _overlap(a: np.ndarray, b: np.ndarray, gap: float = 2.0) -> bool:
    """Whether two convex polygons come closer than `gap` pixels (separating axes)."""
    for polygon in (a, b):
        for k in range(len(polygon)):
            edge = polygon[(k + 1) % len(polygon)] - polygon[k]
            normal = np.array([-edge[1], edge[0]]) / np.hypot(*edge)
            pa, pb = a @ normal, b @ normal
            if pa.max() + gap <= pb.min() or pb.max() + gap <= pa.min():
                return False
    return True


def assert_readable(figure, labels: set[str]) -> None:
    """Every text inside the figure, no two overlapping, and each of `labels` drawn."""
    texts = _drawn_texts(figure)
    width, height = figure.bbox.width, figure.bbox.height
    outside = [
        text
        for text, corners in texts
        if corners.min() < -1 or corners[:, 0].max() > width + 1 or corners[:, 1].max() > height + 1
    ]
    assert not outside, f"text outside the figure: {outside}"
    overlapping = [(a, b) for (a, pa), (b, pb) in itertools.combinations(texts, 2) if _overlap(pa, pb)]
    assert not overlapping, f"overlapping text: {overlapping[:10]}"
    missing = labels - {text for text, _ in texts}
    assert not missing, f"not labelled: {sorted(missing)}"


def _figures(paper_sized):
    """name -> (figure, the labels a reader needs on it)."""
    accuracy, effects, alignment, gains, languages = paper_sized
    models = set(accuracy["model"])
    cells = (
        models
        | set(languages)
        | {"base model", "fine-tuned", "direct prompt", "CoT prompt", "source", "related", "control"}
    )
    return {
        "accuracy": (
            report.cells_figure(accuracy, languages, "accuracy", "accuracy", chance=0.25),
            cells | {"accuracy (%)", "25 chance"},
        ),
        "parse_rate": (
            report.cells_figure(accuracy, languages, "parse_rate", "parse rate", chance=None),
            cells | {"parse rate (%)"},
        ),
        "gains": (
            report.group_gains_figure(effects, MARGIN, confidence=0.95),
            models
            | {
                "source language",
                "related targets",
                "controls",
                "related − control",
                "fine-tuning gain, direct",
                "CoT gain, base model",
            },
        ),
        "alignment": (report.alignment_figure(gains), models | {"equal gains"}),
        "diagnostics": (
            report.diagnostics_figure(accuracy, languages),
            set(languages) | {title for _, title in report.DIAGNOSTICS} | {"share (%)"},
        ),
    }


def test_the_readability_check_sees_overlapping_labels_and_not_rotated_ones():
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(3, 2.5), layout="constrained")
    ax.set_xticks(range(8), labels=[f"label_{k}" for k in range(8)])
    with pytest.raises(AssertionError, match="overlapping text"):
        assert_readable(figure, set())
    ax.set_xticks(range(8), labels=[f"label_{k}" for k in range(8)], rotation=45, ha="right", rotation_mode="anchor")
    assert_readable(figure, {"label_0", "label_7"})
    with pytest.raises(AssertionError, match="not labelled"):
        assert_readable(figure, {"label_8"})
    plt.close(figure)


# two paper-sized figures took 17 and 25 s (2026-12-07): slow; the small ones stay in the default suite
@pytest.mark.parametrize("size", [pytest.param("paper_sized", marks=pytest.mark.slow), "small"])
@pytest.mark.parametrize("name", ["accuracy", "parse_rate", "gains", "alignment", "diagnostics"])
def test_plots_are_labelled_without_overlapping_or_clipped_text(request, size, name):
    import matplotlib.pyplot as plt

    figure, labels = _figures(request.getfixturevalue(size))[name]
    assert_readable(figure, labels)
    plt.close("all")


def test_heatmap_cells_print_the_accuracy_of_their_model_and_language(paper_sized):
    import matplotlib.pyplot as plt

    accuracy, *_, languages = paper_sized
    figure = report.cells_figure(accuracy, languages, "accuracy", "accuracy", chance=0.25)
    order = report.language_order(languages, accuracy["lang"])
    assert order[0] == "arb_Arab" and [languages[code].group for code in order] == sorted(
        (languages[code].group for code in order), key=["source", "related", "control"].index
    )
    models = sorted(accuracy["model"].unique())
    axes = np.array(figure.axes[:4]).reshape(2, 2)
    for (row, prompt), (col, variant) in itertools.product(enumerate(["direct", "cot"]), enumerate(["base", "ft"])):
        printed = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in axes[row, col].texts}
        expected = accuracy[(accuracy["variant"] == variant) & (accuracy["prompt"] == prompt)].set_index(
            ["model", "lang"]
        )["accuracy"]
        for (i, model), (j, lang) in itertools.product(enumerate(models), enumerate(order)):
            assert printed[(i, j)] == f"{100 * expected[(model, lang)]:.0f}", (variant, prompt, model, lang)
    plt.close(figure)


def test_group_gains_plot_places_each_estimate_at_its_model(paper_sized):
    import matplotlib.pyplot as plt

    _, effects, *_ = paper_sized
    figure = report.group_gains_figure(effects, MARGIN, confidence=0.95)
    models = sorted(set(effects["model"]) - {"pooled"})  # the pooled rows have no group gains to plot
    direct = figure.axes[0]
    related = next(c for c in direct.containers if c.get_label() == "related targets")
    x, y = related.lines[0].get_data()
    expected = effects[(effects["prompt"] == "direct") & (effects["effect"] == "ft_gain_related")].set_index("model")[
        "estimate"
    ]
    assert np.allclose(x, [expected[model] for model in models])
    assert np.array_equal(np.round(y).astype(int), np.arange(len(models)))
    assert [label.get_text() for label in direct.get_yticklabels()] == models
    plt.close(figure)


def test_write_report_writes_summary_plots_and_one_page_per_table(repo, paper_sized, tmp_path):
    accuracy, effects, alignment, gains, languages = paper_sized
    paper = validate_config(read_config_file(repo / "config" / "paper.yaml"))
    proximity = proximity_table({**paper, "source_languages": ["arb_Arab"]})
    # one fitted slope: the sentence on the units the slopes rest on comes with a slope
    slope = effects.iloc[[0]].assign(effect="proximity_slope", estimate=0.1, ci_low=-0.1, ci_high=0.3)
    effects = pd.concat([effects, slope], ignore_index=True)
    report.write_report(accuracy, effects, alignment, gains, languages, MARGIN, tmp_path, proximity=proximity, **LEVELS)
    summary = (tmp_path / "summary.md").read_text()
    assert (
        "## Gain against genealogical proximity" in summary
        and "These slopes rest on 8 target languages per source" in summary
        and "wide by design" in summary
    )
    assert {path.name for path in tmp_path.iterdir()} == {
        "summary.md",
        *paths.REPORT_PLOTS.values(),
        *paths.REPORT_TABLES.values(),
    }
    verdicts = (tmp_path / paths.REPORT_TABLES["verdicts"]).read_text()
    assert (
        verdicts.count("<li>") == 3 * accuracy["model"].nunique()
    )  # fine-tuning under direct and cot, and the CoT gain
    assert verdicts.count("<tr") == 1 + int(effects["effect"].isin(["relatedness", "cot_relatedness"]).sum())
    effects_page = (tmp_path / paths.REPORT_TABLES["effects"]).read_text()
    assert effects_page.count("<tr") == 1 + len(effects)


@pytest.mark.slow  # 19 s (2026-12-07)
def test_verdicts_judge_at_the_statistics_level(paper_sized, tmp_path):
    """With stats.confidence 0.9 the verdicts quote the 80% interval a 10% TOST inverts."""
    accuracy, effects, alignment, gains, languages = paper_sized
    report.write_report(
        accuracy, effects, alignment, gains, languages, MARGIN, tmp_path / "at5", alpha=0.05, proximity_margin=0.1
    )
    report.write_report(
        accuracy, effects, alignment, gains, languages, MARGIN, tmp_path / "at10", alpha=0.1, proximity_margin=0.1
    )
    at5 = (tmp_path / "at5" / paths.REPORT_SUMMARY).read_text()
    at10 = (tmp_path / "at10" / paths.REPORT_SUMMARY).read_text()
    assert "the TOST's 90% interval" in at5 and "the TOST's 80% interval" not in at5
    assert "the TOST's 80% interval" in at10 and "the TOST's 90% interval" not in at10


def test_the_format_split_is_stated_per_source_with_several_sources():
    """With two source languages every model has one set of fine-tuning rows per source
    (the default's design): one sentence each, naming its source, with its own numbers."""
    names = ("ft_gain_targets", "ft_gain_choice_targets", "ft_gain_format_targets", "ft_gain_format_share_targets")
    rows = [
        {
            "model": model,
            paths.SOURCE_COLUMN: source,
            "prompt": "direct",
            "effect": name,
            "estimate": value,
            "ci_low": value - 0.1,
            "ci_high": value + 0.1,
        }
        for model, source, gain in (
            ("m1", "arb_Arab", 0.2),
            ("m1", "pes_Arab", 0.3),
            ("m2", "arb_Arab", 0.1),
            ("m2", "pes_Arab", 0.05),
        )
        for name, value in zip(names, (gain, gain / 2, gain / 2, 0.5))
    ]
    rows.append(
        {
            "model": "m1",
            paths.SOURCE_COLUMN: None,
            "prompt": "direct",
            "effect": "relatedness_interaction",
            "estimate": 0.0,
            "ci_low": -0.1,
            "ci_high": 0.1,
        }
    )
    lines = report.knowledge_lines(pd.DataFrame(rows), None, ["m1", "m2"])
    assert [line.split(":")[0] for line in lines] == [
        f"{m}, fine-tuned on {s}" for s in ("arb_Arab", "pes_Arab") for m in ("m1", "m2")
    ]
    assert "+30.0 points [+20.0, +40.0]" in lines[2]  # m1 on pes_Arab
    single = report.knowledge_lines(
        pd.DataFrame([row for row in rows if row[paths.SOURCE_COLUMN] == "arb_Arab"]).drop(columns=paths.SOURCE_COLUMN),
        None,
        ["m1"],
    )
    assert single[0].startswith("m1: fine-tuning gain on the targets (direct prompt) +20.0 points")


def test_gain_against_proximity_labels_every_target_and_states_its_slope(repo, paper_sized):
    """One panel per model for the one source, each target's code at its point, the
    fitted slope in the title."""
    import matplotlib.pyplot as plt

    accuracy, effects, alignment, gains, languages = paper_sized
    paper = validate_config(read_config_file(repo / "config" / "paper.yaml"))
    proximity = proximity_table({**paper, "source_languages": ["arb_Arab"]})
    slopes = pd.DataFrame(
        [
            {
                "model": model,
                "source": "arb_Arab",
                "prompt": "direct",
                "effect": "proximity_slope",
                "estimate": 0.1,
                "ci_low": -0.2,
                "ci_high": 0.4,
                "p_value": 0.5,
            }
            for model in set(accuracy["model"])
        ]
    )
    figure = proximity_figure(gains, proximity, slopes, report._pyplot(), report._points_axis)
    assert len(figure.axes) == accuracy["model"].nunique()
    for ax in figure.axes:
        assert {text.get_text() for text in ax.texts} == set(proximity["target"])
        assert "slope +0.10 [-0.20, +0.40], p=0.5" in ax.get_title()
    plt.close(figure)


def _verdict_rows(primary: tuple[str | None, str, str]) -> pd.DataFrame:
    """effects.csv's verdict rows of two models fine-tuned on two sources, with the
    interaction across them; `primary`: (source, prompt, effect) of the primary rows."""
    keys = [(None, "direct", "relatedness_interaction"), (None, "cot", "relatedness_interaction")]
    keys += [
        (source, prompt, effect)
        for source in ("arb_Arab", "pes_Arab")
        for prompt, effect in (("direct", "relatedness"), ("cot", "relatedness"), ("cot", "cot_relatedness"))
    ]
    return pd.DataFrame(
        {
            "model": model,
            paths.SOURCE_COLUMN: source,
            "prompt": prompt,
            "effect": effect,
            "role": "primary" if (source, prompt, effect) == primary else "secondary",
            "estimate": 0.01,
            "ci_low": -0.1,
            "ci_high": 0.12,
            "p_adjusted": 0.5,
            "equivalence_p": 0.3,
            "n_items": 40,
        }
        for source, prompt, effect in keys
        for model in ("m1", "m2")
    )


@pytest.mark.parametrize(
    "primary, first",
    [
        ((None, "direct", "relatedness_interaction"), "m1 (primary test: direct prompt"),
        (("pes_Arab", "direct", "relatedness"), "fine-tuned on pes_Arab: m1 (primary test: direct prompt"),
        (("arb_Arab", "cot", "relatedness"), "fine-tuned on arb_Arab: m1 (primary test: cot prompt"),
    ],
)
def test_the_primary_test_comes_first_whichever_it_is(primary, first):
    """summary.md's heading says "the primary test first": so it is with stats.primary
    naming one source's rows (…@pes_Arab), not only the interaction; the rest keep
    their order (the interaction's, then each source's)."""
    lines = report.study_verdicts(_verdict_rows(primary), ["m1", "m2"], MARGIN, **LEVELS)
    assert len(lines) == 2 * 2 + 2 * 3 * 2
    assert lines[0].startswith(first) and "primary test" in lines[1]
    assert not any("primary test" in line for line in lines[2:])
    assert sum(not line.startswith("fine-tuned on") for line in lines) == 4  # the interaction's, still there


def test_default_verdict_order_is_kept():
    """The default's primary (the interaction under the direct prompt) was already first:
    the order is the interaction's lines, then each source's."""
    lines = report.study_verdicts(
        _verdict_rows((None, "direct", "relatedness_interaction")), ["m1", "m2"], 0.05, **LEVELS
    )
    sources = [line.split(":")[0] if line.startswith("fine-tuned on") else "" for line in lines]
    assert sources == [""] * 4 + ["fine-tuned on arb_Arab"] * 6 + ["fine-tuned on pes_Arab"] * 6


def test_knowledge_points_say_no_interval_where_there_is_none():
    """Too few passages leave an interval NaN: "no interval", as the verdicts say, not "[+nan, +nan]"."""
    row = {"estimate": 0.05, "ci_low": float("nan"), "ci_high": float("nan")}
    assert report._points(row) == "+5.0 points (no interval)"
    assert report._points({**row, "estimate": float("nan")}) == "no estimate"
    assert report._points({"estimate": -0.05, "ci_low": -0.1, "ci_high": 0.0}) == "−5.0 points [−10.0, +0.0]"


def test_the_choice_cell_is_named_a_letter_score_not_format_free():
    """The letter score needs multiple-choice symbol binding (docs/statistics.md,
    "Knowledge and format"): the format warnings must not call it format-free."""
    accuracy = pd.DataFrame(
        {
            "model": "m1",
            "variant": "ft",
            "prompt": "choice",
            "lang": ["arb_Arab", "heb_Hebr"],
            "top_choice_share": [0.9, 0.3],
            "parse_rate": 1.0,
            "truncation_rate": 0.0,
        }
    )
    (line,) = report.format_warnings(accuracy)
    assert line.startswith("m1, fine-tuned, choice (letter score) prompt: the same label")
    assert all("format-free" not in name for name in report.PROMPT_NAMES.values())


def test_interval_and_margin_texts_follow_the_config(small, tmp_path):
    """With stats.confidence 0.99 the accuracy page and the gains plot say 99%, as
    accuracy.csv and effects.csv hold 99% intervals; a 0.025 margin is ±2.5 points (as
    the verdicts say), not rounded to ±2."""
    accuracy, effects, alignment, _, _ = small
    report.write_tables([], [], accuracy, accuracy, effects, alignment, tmp_path, confidence=0.99)
    page = (tmp_path / paths.REPORT_TABLES["accuracy"]).read_text()
    assert "With 99% intervals and parse rate" in page and "95%" not in page
    texts = {text for text, _ in _drawn_texts(report.group_gains_figure(effects, 0.025, confidence=0.99))}
    assert "change in accuracy (percentage points), 99% interval" in texts
    assert "±2.5-point equivalence margin" in texts
    texts = {text for text, _ in _drawn_texts(report.group_gains_figure(effects, 0.004, confidence=0.95))}
    assert "±0.4-point equivalence margin" in texts and "change in accuracy (percentage points), 95% interval" in texts


def test_report_captions_quote_the_configured_confidence_and_margin(repo):
    """The captions of `snakemake --report` (Jinja, rendered with the run's config, as
    snakemake.report does) say the intervals' confidence and the margin the config sets."""
    import jinja2

    from xlt.config import read_config_file, validate_config

    class Snakemake:
        # the config as the workflow holds it (common.smk: validated), with other settings
        config = validate_config(read_config_file(repo / "config" / "config.yaml"))
        config["stats"] = {**config["stats"], "confidence": 0.99, "equivalence_margin": 0.025}

    # A key the config lacks would render as nothing: here it stops the test.
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    captions = {
        path.stem: env.from_string(path.read_text()).render(snakemake=Snakemake)
        for path in (repo / "workflow" / "report").glob("*.rst")
    }
    assert not [name for name, text in captions.items() if "95" in text]
    for name in ("accuracy_table", "alignment_table", "effects_table", "gains", "proximity"):
        assert "stats.confidence" in captions[name] and "99%" in captions[name], name
    assert "(±2.5 points)" in captions["gains"] and "±2.5-point margin" in captions["verdicts"]
    assert "each source language\n(arb_Arab, pes_Arab)" in captions["workflow"]


def test_the_effects_heading_names_the_unit_the_notes_say_was_resampled():
    """The default fixture has one question per passage, so its intervals resample items
    (notes.csv says so); summary.md's Effects heading said "passages" whatever the tree."""
    from xlt.stats.notes import interval_method
    from xlt.stattests import Resampling

    settings = StatsSettings(bootstrap_samples=10)
    one_each = interval_method(settings, Resampling.draw(np.arange(8), 10, 0.95, 0))
    shared = interval_method(settings, Resampling.draw(np.repeat(np.arange(4), 2), 10, 0.95, 0))
    assert report.resampled_units(pd.DataFrame({"method": [one_each, ""]})) == "items"
    assert report.resampled_units(pd.DataFrame({"method": [shared]})) == "passages"
    assert report.resampled_units(None) == "passages"


def test_the_tables_show_a_p_value_below_one_in_a_thousand_as_such_not_as_zero():
    effects = pd.DataFrame({"effect": ["a", "b", "c"], "estimate": [0.1, 0.2, 0.3], "p_value": [0.0001, 0.0123, None]})
    markdown = report._markdown(effects)
    assert "<0.001" in markdown and "0.012" in markdown and "0.000" not in markdown
    html = report._html_table(effects)
    assert "&lt;0.001" in html and "0.012" in html and "0.000" not in html
