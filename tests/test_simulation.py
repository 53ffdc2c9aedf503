"""Operating characteristics of the primary test (the relatedness effect; with several
sources, as in the default config, their interaction), measured on predictions simulated
with a known truth (xlt.simulate) and computed by the code that writes effects.csv.

The data are passage-correlated (two questions per passage, xlt.simulate's
PASSAGE_CORRELATED). Bounds are the target plus or minus three Monte-Carlo standard
errors at the target rate, so a seeded run fails only when the property is off by more
than chance allows. The default suite runs a small seeded version; the slow one has the
sizes quoted in docs/statistics.md (`python -m xlt.simulate`)."""

import math

import numpy as np
import pandas as pd
import pytest
from test_stats import CONFIG as SINGLE_SOURCE

from xlt.config import load_config
from xlt.languages import language_table
from xlt.simulate import (
    PASSAGE_CORRELATED,
    Scenario,
    operating_characteristics,
    primary_name,
    primary_trials,
    primary_weights,
    simulate_cells,
    study_variants,
)
from xlt.stats.cells import ModelCells
from xlt.stats.effects import ModelContext, accuracy_effect
from xlt.stats.settings import StatsSettings
from xlt.stats.sources import interaction_rows
from xlt.stattests import Resampling


@pytest.fixture(scope="module")
def default_study(repo):
    return load_config(repo / "config" / "config.yaml")


@pytest.fixture(scope="module", params=["default", "single source"])
def study(request, default_study):
    return default_study if request.param == "default" else SINGLE_SOURCE


def check(table, trials):
    alpha, confidence = 0.05, 0.95
    slack = lambda rate: 3 * math.sqrt(rate * (1 - rate) / trials)  # noqa: E731
    by_check = {(row.check, row.scenario): row.rate for row in table[table.version == "passage"].itertuples()}
    assert by_check[("false-positive rate (p < alpha)", "no effect")] <= alpha + slack(alpha)
    assert by_check[("power (p < alpha)", "10-point advantage")] >= 0.5  # the level is not bought by never rejecting
    for scenario in ("no effect", "10-point advantage", "advantage = margin"):
        assert abs(by_check[("coverage of the 95% interval", scenario)] - confidence) <= slack(confidence)
    assert by_check[("false equivalence (TOST p < alpha)", "advantage = margin")] <= alpha + slack(alpha)


def test_the_simulated_test_is_the_studys_primary_one(default_study):
    assert (
        primary_name(default_study) == "direct/relatedness_interaction"
        and primary_name(SINGLE_SOURCE) == "direct/relatedness"
    )
    # The related-language advantage is planted after the Semitic source only: an interaction.
    assert study_variants(default_study) == {"ft-arb_Arab": True, "ft-pes_Arab": False} and study_variants(
        SINGLE_SOURCE
    ) == {"ft-arb_Arab": True}


def test_primary_test_keeps_its_level_power_and_coverage(study):
    trials = 400
    table = operating_characteristics(study, StatsSettings(bootstrap_samples=500), trials, n_items=200, seed=1)
    assert set(table["test"]) == {primary_name(study)}
    check(table, trials)


def test_equivalence_is_reachable_with_many_items(study):
    """With no advantage and enough items the TOST does declare equivalence, so its
    false-equivalence guarantee is not bought by never deciding."""
    trials = 40
    results = primary_trials(Scenario(n_items=3000), study, trials, StatsSettings(bootstrap_samples=200), seed=2)
    assert (results.equivalence_p < 0.05).mean() >= 0.9


def test_batched_trials_compute_what_effects_csv_reports(study):
    """primary_trials computes its trials in batches; each row is what accuracy_effect
    gives for that trial's data."""
    settings = StatsSettings(bootstrap_samples=300)
    scenario = PASSAGE_CORRELATED.with_(n_items=40)
    batched = primary_trials(scenario, study, 3, settings, seed=5, batch=2)
    rng = np.random.default_rng(5)
    resampling = Resampling.draw(scenario.passages, 300, 0.95, 0)
    for trial in batched.itertuples():
        matrix, columns = simulate_cells(scenario, language_table(study), rng, variants=study_variants(study))
        cells = ModelCells(matrix, {column: k for k, column in enumerate(columns)})
        row = accuracy_effect(
            ModelContext.build("m", cells, resampling, settings),
            "direct",
            primary_name(study),
            primary_weights(cells, study),
        )
        assert (trial.estimate, trial.ci_low, trial.ci_high, trial.p_value, trial.equivalence_p) == pytest.approx(
            (row.estimate, row.ci_low, row.ci_high, row.p_value, row.equivalence_p)
        )


def test_the_interaction_weights_are_those_of_effects_csv(default_study):
    """The simulated interaction is the one interaction_rows reports (xlt compare)."""
    scenario = PASSAGE_CORRELATED.with_(n_items=40, related_advantage=0.1)
    matrix, columns = simulate_cells(
        scenario, language_table(default_study), np.random.default_rng(3), variants=study_variants(default_study)
    )
    cells = ModelCells(matrix, {column: k for k, column in enumerate(columns)})
    items = pd.DataFrame(
        [
            {
                "model": "m",
                "item_id": f"p{k // 2:03d}#{k % 2 + 1}",
                "variant": variant,
                "prompt": prompt,
                "lang": lang,
                "correct": bool(matrix[k, j]),
            }
            for (variant, prompt, lang), j in cells.columns.items()
            for k in range(40)
        ]
    )
    direct = next(
        row
        for row in interaction_rows(items, default_study, StatsSettings(bootstrap_samples=200))
        if row.prompt == "direct"
    )
    assert direct.estimate == pytest.approx(float((matrix @ primary_weights(cells, default_study)).mean()))


@pytest.mark.slow
def test_primary_test_operating_characteristics_at_full_size(study):
    trials = 5000
    table = operating_characteristics(study, StatsSettings(), trials, n_items=200, seed=0)
    check(table, trials)
    # On the same passage-correlated data the question-level version rejects too often.
    question = table[(table.version == "question-level") & (table.check == "false-positive rate (p < alpha)")].iloc[0]
    assert question.rate > 0.05 + 3 * math.sqrt(0.05 * 0.95 / trials)


def _rate(table: pd.DataFrame, targets: int, check: str) -> float:
    return float(table.loc[(table["targets"] == targets) & table["check"].str.startswith(check), "rate"].iloc[0])


def test_the_proximity_slope_is_found_at_30_targets():
    """The continuous design (proximity_slope, docs/statistics.md): a planted slope of
    0.2 per unit of proximity is found in nearly every trial at 30 targets."""
    from xlt.simulate import proximity_characteristics

    table = proximity_characteristics(StatsSettings(bootstrap_samples=200), trials=20, sizes=(30,))
    assert set(table["check"].str.split(" ").str[0]) == {"false-positive", "coverage", "equivalence", "power"}
    assert _rate(table, 30, "power") >= 0.9


@pytest.mark.slow
def test_the_proximity_slope_keeps_its_level_at_8_and_120_targets():
    """False positives within three Monte-Carlo standard errors of 5% at 8 and 120
    targets (400 trials each; docs/statistics.md quotes 600)."""
    from xlt.simulate import proximity_characteristics

    table = proximity_characteristics(StatsSettings(bootstrap_samples=500), trials=400, sizes=(8, 120), seed=7)
    bound = 3 * math.sqrt(0.05 * 0.95 / 400)
    for targets in (8, 120):
        assert abs(_rate(table, targets, "false-positive") - 0.05) <= bound, targets
    assert _rate(table, 120, "power") >= 0.95
