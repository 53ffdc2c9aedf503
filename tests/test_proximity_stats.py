"""The continuous design: the fine-tuning gain regressed on genealogical proximity
across target languages (xlt.stats.proximity), through `xlt compare`."""

import json

import numpy as np
import pandas as pd
import pytest
from test_scoring import write_tree

from xlt.cli import main
from xlt.config import validate_config
from xlt.languages import language_metadata, language_table
from xlt.paths import SOURCE_COLUMN
from xlt.proximity import INTERACTION, SLOPE, proximity_table
from xlt.simulate import PASSAGE_CORRELATED, simulate_predictions
from xlt.stats.proximity import partial_slope


def test_partial_slope_is_the_least_squares_coefficient():
    rng = np.random.default_rng(0)
    x, z = rng.random(30), rng.random((30, 2))
    y = 0.3 * x + z @ [1.0, -2.0] + rng.normal(0, 0.1, 30)
    design = np.column_stack([np.ones(30), x, z])
    assert partial_slope(y, x, z) == pytest.approx(np.linalg.lstsq(design, y, rcond=None)[0][1])
    assert np.isnan(partial_slope(y, z[:, 0], z))  # proximity that is a covariate: no slope


def study(codes: list[str], sources: list[str]) -> dict:
    """A validated study of Belebele languages whose metadata gives family and script."""
    return validate_config(
        {
            "languages": {code: {} for code in codes},
            "source_languages": sources,
            "related_families": ["Afro-Asiatic"],
            "data": {},
            "models": {"m1": {"id": "org/m1"}},
            "stats": {"bootstrap_samples": 400},
        }
    )


def compared(tmp_path, config: dict, slope: float, n_items: int, seed: int) -> pd.DataFrame:
    """effects.csv of `xlt compare` on one model's simulated predictions, the gain
    growing by `slope` per unit of proximity to the source."""
    source = config["source_languages"][0]
    table = proximity_table(config)
    variant = f"ft-{source}"
    proximity = {
        variant: dict(
            zip(table.loc[table["source"] == source, "target"], table.loc[table["source"] == source, "genealogical"])
        )
    }
    scenario = PASSAGE_CORRELATED.with_(
        n_items=n_items, baseline=0.35, ft_gain=0.02, language_baseline_sd=0.3, proximity_slope=slope
    )
    frame = simulate_predictions(
        {"m1": scenario}, language_table(config), seed=seed, variants={variant: True}, proximity=proximity
    )
    return compared_tree(tmp_path, frame, config)


def compared_tree(tmp_path, frame: pd.DataFrame, config: dict) -> pd.DataFrame:
    """effects.csv of `xlt compare` on `frame` written as a predictions tree, under `config`."""
    write_tree(tmp_path / "predictions", frame)
    (tmp_path / "config.yaml").write_text(json.dumps(config))
    arguments = ["--predictions", str(tmp_path / "predictions"), "--config", str(tmp_path / "config.yaml")]
    assert main(["compare", *arguments, "--out", str(tmp_path / "stats")]) == 0
    return pd.read_csv(tmp_path / "stats" / "effects.csv", keep_default_na=False)


def slope_row(effects: pd.DataFrame, prompt: str = "direct") -> pd.Series:
    rows = effects[(effects["effect"] == SLOPE) & (effects["prompt"] == prompt)]
    assert len(rows) == 1
    return rows.iloc[0]


@pytest.mark.slow
@pytest.mark.parametrize("planted", [0.15, 0.0])
def test_compare_finds_a_planted_proximity_slope_across_120_languages(tmp_path, planted):
    """Arabic and 120 Belebele targets, 100 passages of two questions each: a gain that
    grows by 15 points per unit of proximity is found (interval above 0, permutation p
    small); with none, the interval covers 0 and the TOST bounds the slope within
    ±stats.proximity_margin."""
    codes = ["arb_Arab", *[code for code in language_metadata() if code != "arb_Arab"][:120]]
    effects = compared(tmp_path, study(codes, ["arb_Arab"]), planted, n_items=200, seed=5)
    row = slope_row(effects)
    assert row[SOURCE_COLUMN] == "arb_Arab" and row["role"] == "secondary"
    low, high = float(row["ci_low"]), float(row["ci_high"])
    if planted:
        assert low > 0 and float(row["p_value"]) < 0.01 and low < planted < high
    else:
        assert low < 0 < high
        assert float(row["equivalence_p"]) < 0.05
        assert -0.1 < float(row["equivalence_ci_low"]) < float(row["equivalence_ci_high"]) < 0.1


def test_the_default_languages_give_wide_slopes_that_say_so(tmp_path):
    """The default study's eight languages and two sources: a slope per source and the
    interaction across them, each with an interval (wide: 7 and 6 units) that notes.csv
    calls wide, and its targets named."""
    codes = ["arb_Arab", "heb_Hebr", "amh_Ethi", "mlt_Latn", "tur_Latn", "eng_Latn", "pes_Arab", "urd_Arab"]
    config = study(codes, ["arb_Arab", "pes_Arab"])
    frame = simulate_predictions(
        {"m1": PASSAGE_CORRELATED.with_(n_items=60)},
        language_table(config),
        seed=1,
        variants={"ft-arb_Arab": True, "ft-pes_Arab": False},
    )
    effects = compared_tree(tmp_path, frame, config)
    notes = pd.read_csv(tmp_path / "stats" / "notes.csv", keep_default_na=False)
    rows = effects[effects["effect"].isin([SLOPE, INTERACTION])]
    assert set(zip(rows[SOURCE_COLUMN], rows["effect"], rows["prompt"])) == {
        *((source, SLOPE, prompt) for source in ("arb_Arab", "pes_Arab") for prompt in ("direct", "cot")),
        *(("", INTERACTION, prompt) for prompt in ("direct", "cot")),
    }
    assert (rows["ci_low"].astype(float) < rows["ci_high"].astype(float)).all()
    assert rows["p_value"].astype(float).between(0, 1).all()
    said = notes[notes["effect"].isin([SLOPE, INTERACTION])]
    assert said["note"].str.contains("wide by design").all()
    assert (
        said.loc[said["effect"] == INTERACTION, "note"]
        .str.contains("6 target languages: heb_Hebr, amh_Ethi, mlt_Latn, tur_Latn, eng_Latn, urd_Arab")
        .all()
    )
    assert said["method"].str.contains("permutation of the covariate-adjusted proximities").all()


def test_a_gain_the_same_in_every_target_gives_no_slope_and_no_interval():
    """Gains the same in every target, or exactly what the covariates say (a CoT cell that
    never answers): the slope is 0 by construction, so the row is NaN with a note, not a
    zero-width interval whose TOST would claim the absence of an effect."""
    from xlt.stats.proximity import slope_row
    from xlt.stats.settings import StatsSettings

    proximity = np.array([0.0, 0.1, 0.5, 0.75, 0.2, 0.0, 0.3])
    baseline = np.linspace(0.2, 0.5, 7)
    row = slope_row(
        ("m", "cot", SLOPE, 16),
        np.zeros(7),
        proximity,
        {"baseline": baseline},
        [f"l{i}" for i in range(7)],
        StatsSettings(bootstrap_samples=200),
    )
    assert np.isnan([row.estimate, row.ci_low, row.ci_high, row.p_value, row.equivalence_p]).all()
    assert any("explain the gains exactly" in note for note in row.notes)
    # A fine-tuned cell at 0 in every target: the gain is minus the baseline, which the
    # baseline covariate explains exactly.
    explained = slope_row(
        ("m", "cot", SLOPE, 16),
        -baseline,
        proximity,
        {"baseline": baseline},
        [f"l{i}" for i in range(7)],
        StatsSettings(bootstrap_samples=200),
    )
    assert np.isnan(
        [explained.estimate, explained.ci_low, explained.ci_high, explained.p_value, explained.equivalence_p]
    ).all()
    varied = slope_row(
        ("m", "cot", SLOPE, 16),
        proximity / 4,
        proximity,
        {"baseline": baseline},
        [f"l{i}" for i in range(7)],
        StatsSettings(bootstrap_samples=200),
    )
    assert varied.estimate == pytest.approx(0.25)


def test_the_summary_counts_the_units_each_kind_of_slope_rests_on():
    """The interaction rows regress on the targets both sources share (6 of the default's
    7 per source), and no sentence is said where no slope was fitted."""
    from xlt.proximity_report import proximity_lines

    proximity = pd.DataFrame(
        {
            "source": ["arb_Arab"] * 3 + ["pes_Arab"] * 3,
            "target": ["heb_Hebr", "tur_Latn", "pes_Arab", "heb_Hebr", "tur_Latn", "arb_Arab"],
        }
    )
    effects = pd.DataFrame(
        {
            "model": "m",
            "prompt": "direct",
            "effect": ["proximity_slope", "proximity_interaction"],
            "estimate": [0.1, 0.2],
            "ci_low": [-0.1, -0.2],
            "ci_high": [0.3, 0.4],
            "p_value": [0.5, 0.5],
            "equivalence_p": [0.5, 0.5],
        }
    )
    assert proximity_lines(effects, proximity)[-1].startswith(
        "These slopes rest on 3 target languages per source, the proximity_interaction rows on the 2 targets "
        "every source shares: their intervals are wide by design"
    )
    assert not any("rest on" in line for line in proximity_lines(effects.assign(estimate=np.nan), proximity))


def test_the_summary_says_why_a_slope_was_not_fitted():
    """summary.md said "no slope" for Gemma's CoT slopes of the default run, where notes.csv
    says why (the intercept and baseline explain the gains exactly): the line now gives it."""
    from xlt.proximity_report import proximity_lines
    from xlt.stats.effects import row_tables
    from xlt.stats.proximity import slope_row
    from xlt.stats.settings import StatsSettings

    baseline = np.linspace(0.2, 0.5, 7)
    row = slope_row(
        ("m", "cot", SLOPE, 16),
        -baseline,
        np.array([0.0, 0.1, 0.5, 0.75, 0.2, 0.0, 0.3]),
        {"baseline": baseline},
        [f"l{i}" for i in range(7)],
        StatsSettings(bootstrap_samples=200),
    )
    effects, notes = row_tables([row])
    proximity = pd.DataFrame({"source": "s", "target": [f"l{i}" for i in range(7)]})
    assert proximity_lines(effects, proximity, notes=notes)[0] == (
        "m / cot / proximity_slope (across sources): no slope (the intercept and baseline explain the gains "
        "exactly, so nothing is left that proximity could explain)"
    )
    assert proximity_lines(effects, proximity)[0].endswith(": no slope")


def test_the_summary_counts_the_targets_the_fitted_rows_had_where_cells_are_missing():
    """A tree with heb_Hebr's cells after Arabic missing (allowed), and a target without
    Glottolog metadata (xyz_Latn, no proximity: left out of every fit): Arabic's slope
    rests on 2 targets, Persian's on 3, the interaction on the 1 both share with both
    cells; the sentence counts those, not every row of proximity.csv."""
    from xlt.proximity_report import proximity_lines

    proximity = pd.DataFrame(
        {
            "source": ["arb_Arab"] * 4 + ["pes_Arab"] * 4,
            "target": ["heb_Hebr", "tur_Latn", "pes_Arab", "xyz_Latn", "heb_Hebr", "tur_Latn", "arb_Arab", "xyz_Latn"],
            "genealogical": [0.5, 0.0, 0.0, np.nan, 0.0, 0.0, 0.0, np.nan],
        }
    )
    effects = pd.DataFrame(
        {
            "model": "m",
            "source": ["arb_Arab", "pes_Arab", None],
            "prompt": "direct",
            "effect": ["proximity_slope", "proximity_slope", "proximity_interaction"],
            "estimate": [0.1, 0.2, 0.3],
            "ci_low": [-0.1, -0.2, -0.3],
            "ci_high": [0.3, 0.4, 0.5],
            "p_value": [0.5, 0.5, 0.5],
            "equivalence_p": [0.5, 0.5, 0.5],
        }
    )
    have = {
        "arb_Arab": ["arb_Arab", "tur_Latn", "pes_Arab", "xyz_Latn"],
        "pes_Arab": ["pes_Arab", "heb_Hebr", "tur_Latn", "arb_Arab", "xyz_Latn"],
    }
    gains = pd.DataFrame(
        [
            {"model": "m", "source": source, "lang": lang, "gain": "ft_gain", "prompt": "direct"}
            for source, langs in have.items()
            for lang in langs
        ]
    )
    assert proximity_lines(effects, proximity, gains)[-1].startswith(
        "These slopes rest on 2 to 3 target languages per source, the proximity_interaction rows on the 1 targets "
        "every source shares: their intervals are wide by design"
    )
