"""Operating characteristics of the relatedness test, measured on predictions simulated
with a known truth (xlt.simulate) and computed by the code that writes effects.csv.

Bounds are the target plus or minus three Monte-Carlo standard errors at the target
rate, so a seeded run fails only when the property is off by more than chance allows.
The default suite runs a small seeded version; the slow one has the sizes quoted in
the README (`python -m xlt.simulate --trials 5000`)."""

import math

import pytest

from xlt.config import load_config
from xlt.languages import language_table
from xlt.simulate import Scenario, operating_characteristics, relatedness_trials
from xlt.stats import StatsSettings


@pytest.fixture(scope="module")
def languages(repo):
    return language_table(load_config(repo / "config" / "config.yaml"))


def check(table, trials):
    alpha, confidence = 0.05, 0.95
    slack = lambda rate: 3 * math.sqrt(rate * (1 - rate) / trials)  # noqa: E731
    by_check = {(row.check, row.scenario): row.rate for row in table.itertuples()}
    assert by_check[("false-positive rate (p < alpha)", "no effect")] <= alpha + slack(alpha)
    assert by_check[("power (p < alpha)", "10-point advantage")] >= 0.8 - slack(0.8)
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


@pytest.mark.slow
def test_relatedness_test_operating_characteristics_at_full_size(languages):
    trials = 5000
    check(operating_characteristics(languages, StatsSettings(), trials, n_items=200, seed=0), trials)
