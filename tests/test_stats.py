import numpy as np
import pandas as pd
import pytest

from simulated import predictions, study_cells
from xlt.languages import language_table
from xlt.paths import ALIGNMENT_COLUMNS, EFFECTS_COLUMNS
from xlt.stats import StatsSettings, compare, holm, sign_flip_p, tost_p

CONFIG = {
    "languages": {
        "arb_Arab": {"family": "Semitic", "script": "Arab"},
        "heb_Hebr": {"family": "Semitic", "script": "Hebr"},
        "mlt_Latn": {"family": "Semitic", "script": "Latn"},
        "eng_Latn": {"family": "Indo-European", "script": "Latn"},
        "pes_Arab": {"family": "Indo-European", "script": "Arab"},
    },
    "source_language": "arb_Arab",
    "related_families": ["Semitic"],
}
LANGS = list(CONFIG["languages"])
SETTINGS = StatsSettings(bootstrap_samples=500, seed=1)


def effect(effects, model, prompt, name):
    return effects.set_index(["model", "prompt", "effect"]).loc[(model, prompt, name)]


def test_effects_have_the_contract_columns_and_recover_a_known_gain():
    cells = study_cells(["m1", "m2", "m3"], LANGS, base=0.4, gains={"heb_Hebr": 0.3, "mlt_Latn": 0.3, "arb_Arab": 0.3})
    effects, alignment, gains = compare(predictions(cells, 400, seed=2), language_table(CONFIG), SETTINGS)
    assert list(effects.columns) == list(EFFECTS_COLUMNS)
    assert list(alignment.columns) == list(ALIGNMENT_COLUMNS)
    row = effect(effects, "m1", "direct", "relatedness")
    assert row.estimate == pytest.approx(0.3, abs=0.06)
    assert row.ci_low > 0.15 and row.p_adjusted < 0.01
    control = effect(effects, "m1", "direct", "ft_gain_control")
    assert abs(control.estimate) < 0.06 and control.ci_low < 0 < control.ci_high
    assert effects["n_items"].eq(400).all()
    assert effects[["estimate", "ci_low", "ci_high", "p_value", "p_adjusted", "equivalence_p"]].notna().all().all()


def test_equal_gains_everywhere_are_declared_equivalent():
    cells = study_cells(["m1"], LANGS, base=0.4, gains={lang: 0.2 for lang in LANGS})
    effects, _, _ = compare(predictions(cells, 3000, seed=4), language_table(CONFIG), SETTINGS)
    row = effect(effects, "m1", "direct", "relatedness")
    assert abs(row.estimate) < 0.04
    assert row.equivalence_p < 0.05
    gain = effect(effects, "m1", "direct", "ft_gain_control")
    assert gain.estimate == pytest.approx(0.2, abs=0.05) and gain.p_value < 0.001


def test_alignment_correlates_ft_and_cot_gains_across_models():
    frames = []
    for k, (model, g) in enumerate({"weak": 0.3, "mid": 0.15, "strong": 0.02, "top": 0.0}.items()):
        cells = study_cells([model], LANGS, base=0.3 + (0.3 - g), gains={lang: g for lang in LANGS}, cot_gain=g)
        frames.append(predictions(cells, 300, seed=10 + k))
    items = pd.concat(frames, ignore_index=True)
    _, alignment, _ = compare(items, language_table(CONFIG), SETTINGS)
    row = alignment.set_index("statistic").loc["pearson:ft_gain~cot_gain:models"]
    assert row.estimate > 0.8 and row.n_models == 4
    assert alignment.set_index("statistic").loc["pearson:baseline~ft_gain:models"].estimate < -0.8


def test_alignment_needs_three_models_for_a_model_level_correlation():
    cells = study_cells(["m1", "m2"], LANGS, base=0.4, gains={})
    _, alignment, _ = compare(predictions(cells, 50), language_table(CONFIG), SETTINGS)
    by_name = alignment.set_index("statistic")
    assert np.isnan(by_name.loc["pearson:ft_gain~cot_gain:models", "estimate"])
    assert np.isfinite(by_name.loc["pearson:ft_gain~cot_gain:model_language", "estimate"])


def test_sign_flip_p_is_exact_enough():
    assert sign_flip_p(np.zeros(30), 0) == 1.0
    assert sign_flip_p(np.ones(30), 0) < 0.001
    rng = np.random.default_rng(0)
    assert sign_flip_p(rng.choice([-1.0, 1.0], 200), 1) > 0.05


def test_tost_and_holm():
    draws = np.random.default_rng(0).normal(0.0, 0.01, 2000)
    assert tost_p(draws, 0.05) < 0.01
    assert tost_p(draws + 0.05, 0.05) > 0.4
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
