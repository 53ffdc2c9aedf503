"""Operating characteristics of the relatedness test, measured on predictions simulated
with a known truth (xlt.simulate) and computed by the code that writes effects.csv.

The data are passage-correlated (two questions per passage, xlt.simulate's
PASSAGE_CORRELATED). Bounds are the target plus or minus three Monte-Carlo standard
errors at the target rate, so a seeded run fails only when the property is off by more
than chance allows. The default suite runs a small seeded version; the slow one has the
sizes quoted in docs/statistics.md (`python -m xlt.simulate`)."""

import math

import numpy as np
import pytest

from xlt.config import load_config
from xlt.languages import language_table
from xlt.simulate import PASSAGE_CORRELATED, Scenario, operating_characteristics, relatedness_trials, simulate_cells
from xlt.stats import FT_DIRECT, ModelCells, ModelContext, StatsSettings, accuracy_effect
from xlt.stattests import Resampling


@pytest.fixture(scope="module")
def languages(repo):
    return language_table(load_config(repo / "config" / "config.yaml"))


def check(table, trials):
    alpha, confidence = 0.05, 0.95
    slack = lambda rate: 3 * math.sqrt(rate * (1 - rate) / trials)  # noqa: E731
    by_check = {(row.check, row.scenario): row.rate for row in table[table.version == "passage"].itertuples()}
    assert by_check[("false-positive rate (p < alpha)", "no effect")] <= alpha + slack(alpha)
    assert by_check[("power (p < alpha)", "10-point advantage")] >= 0.5  # the level is not bought by never rejecting
    for scenario in ("no effect", "10-point advantage", "advantage = margin"):
        assert abs(by_check[("coverage of the 95% interval", scenario)] - confidence) <= slack(confidence)
    assert by_check[("false equivalence (TOST p < alpha)", "advantage = margin")] <= alpha + slack(alpha)


def test_relatedness_test_keeps_its_level_power_and_coverage(languages):
    trials = 400
    check(operating_characteristics(languages, StatsSettings(bootstrap_samples=500), trials, n_items=200, seed=1), trials)


def test_equivalence_is_reachable_with_many_items(languages):
    """With no advantage and enough items the TOST does declare equivalence, so its
    false-equivalence guarantee is not bought by never deciding."""
    trials = 40
    results = relatedness_trials(Scenario(n_items=3000), languages, trials, StatsSettings(bootstrap_samples=200), seed=2)
    assert (results.equivalence_p < 0.05).mean() >= 0.9


def test_batched_trials_compute_what_effects_csv_reports(languages):
    """relatedness_trials computes its trials in batches; each row is what
    accuracy_effect gives for that trial's data."""
    settings = StatsSettings(bootstrap_samples=300)
    scenario = PASSAGE_CORRELATED.with_(n_items=40)
    batched = relatedness_trials(scenario, languages, 3, settings, seed=5, batch=2)
    rng = np.random.default_rng(5)
    resampling = Resampling.draw(scenario.passages, 300, 0.95, 0)
    for trial in batched.itertuples():
        matrix, columns = simulate_cells(scenario, languages, rng)
        cells = ModelCells(matrix, {column: k for k, column in enumerate(columns)})
        groups = cells.groups(FT_DIRECT, languages)
        row = accuracy_effect(
            ModelContext.build("m", cells, resampling, settings),
            "direct",
            "relatedness",
            cells.contrast_weights(FT_DIRECT, groups["related"], groups["control"]),
        )
        assert (trial.estimate, trial.ci_low, trial.ci_high, trial.p_value, trial.equivalence_p) == pytest.approx(
            (row.estimate, row.ci_low, row.ci_high, row.p_value, row.equivalence_p)
        )


@pytest.mark.slow
def test_relatedness_test_operating_characteristics_at_full_size(languages):
    trials = 5000
    table = operating_characteristics(languages, StatsSettings(), trials, n_items=200, seed=0)
    check(table, trials)
    # On the same passage-correlated data the question-level version rejects too often.
    question = table[(table.version == "question-level") & (table.check == "false-positive rate (p < alpha)")].iloc[0]
    assert question.rate > 0.05 + 3 * math.sqrt(0.05 * 0.95 / trials)
