"""`xlt compare` on predictions made elsewhere: any tree in the contract's layout and
columns works; a malformed file is rejected with its path and column."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_scoring import write_tree

from xlt.cli import main
from xlt.languages import language_table
from xlt.paths import ALIGNMENT_COLUMNS, EFFECTS_COLUMNS, NOTES_COLUMNS, SOURCE_COLUMN
from xlt.primary import INTERACTION
from xlt.simulate import PASSAGE_CORRELATED, Scenario, simulate_predictions, study_variants

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
    "stats": {"bootstrap_samples": 300},
}


def write_foreign_tree(root, frame):
    """As another tool might: integer item ids, float choices with NaN, 0/1 correctness,
    the answer as text, columns in another order and one extra."""
    for (model, variant, prompt, lang), rows in frame.groupby(["model", "variant", "prompt", "lang"]):
        path = root / model / variant / prompt / f"{lang}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.table(
            {
                "logprob": np.zeros(len(rows)),
                "correct": rows["correct"].astype(int).to_numpy(),
                "item_id": rows["item_id"].str.removeprefix("item").str.replace("#", "").astype(int).to_numpy(),
                "lang": rows["lang"].to_numpy(),
                "model": rows["model"].to_numpy(),
                "variant": rows["variant"].to_numpy(),
                "prompt": rows["prompt"].to_numpy(),
                "raw_output": rows["raw_output"].to_numpy(),
                "parsed_choice": rows["parsed_choice"].astype("float").to_numpy(),
                "answer": rows["answer"].astype(str).to_numpy(),
                "n_prompt_tokens": rows["n_prompt_tokens"].to_numpy(),
                "n_output_tokens": rows["n_output_tokens"].to_numpy(),
            }
        )
        pq.write_table(table, path)


@pytest.fixture
def tree(tmp_path):
    scenarios = {
        model: Scenario(n_items=50, baseline=0.35 + 0.1 * k, ft_gain=0.2 - 0.05 * k, cot_gain=0.1)
        for k, model in enumerate(("m1", "m2", "m3"))
    }
    frame = simulate_predictions(scenarios, language_table(CONFIG), seed=3, variants=study_variants(CONFIG))
    write_foreign_tree(tmp_path / "predictions", frame)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({**CONFIG, "data": {}, "models": {"m1": {"id": "org/m1"}}}))
    return tmp_path / "predictions", config


def run(tree, out, *flags):
    root, config = tree
    return main(["compare", "--predictions", str(root), "--config", str(config), "--out", str(out), *flags])


def test_compare_runs_on_a_tree_made_elsewhere(tree, tmp_path):
    assert run(tree, tmp_path / "stats") == 0
    effects = pd.read_csv(tmp_path / "stats" / "effects.csv")
    alignment = pd.read_csv(tmp_path / "stats" / "alignment.csv")
    notes = pd.read_csv(tmp_path / "stats" / "notes.csv", keep_default_na=False)
    # the source column: one source's rows, as every single-source tree's
    assert list(effects.columns) == ["model", SOURCE_COLUMN, *EFFECTS_COLUMNS[1:]]
    assert list(alignment.columns) == [SOURCE_COLUMN, *ALIGNMENT_COLUMNS]
    assert list(notes.columns) == [*NOTES_COLUMNS[:2], SOURCE_COLUMN, *NOTES_COLUMNS[2:]]
    assert set(effects[SOURCE_COLUMN]) == {CONFIG["source_language"]}
    assert set(effects["model"]) == {"m1", "m2", "m3", "pooled"}
    assert {
        "relatedness",
        "cot_relatedness",
        "same_family",
        "same_script",
        "relatedness_gee",
        "relatedness_mde",
    } <= set(effects["effect"])
    assert effects["estimate"].notna().all()
    assert alignment["estimate"].notna().all() and (alignment["n_models"] == 3).all()
    # Every gap in a table has its reason in notes.csv, and every row left out (this
    # tree has no choice cell) a "missing:" note.
    missing = notes["note"].str.startswith("missing:")
    assert len(notes) == len(effects) + len(alignment) + missing.sum()
    assert set(notes.loc[missing, "effect"]) >= {
        "ft_gain_choice_*, ft_gain_format_*, ft_gain_format_share_targets",
        "pearson:ft_gain_format~cot_gain:models",
    }
    # Integer item ids carry no passage key: every row says its questions were treated as independent.
    assert notes["note"].str.contains("50 questions treated as independent").all()


def test_compare_reads_a_tree_with_missing_cells_when_allowed(tree, tmp_path):
    root, _ = tree
    for path in (root / "m3" / "base" / "cot").glob("*.parquet"):
        path.unlink()
    assert run(tree, tmp_path / "stats", "--allow-missing") == 0
    effects = pd.read_csv(tmp_path / "stats" / "effects.csv")
    assert "cot_relatedness" not in set(effects[effects.model == "m3"]["effect"])
    assert "relatedness" in set(effects[(effects.model == "m3") & (effects.prompt == "direct")]["effect"])
    alignment = pd.read_csv(tmp_path / "stats" / "alignment.csv")
    assert (alignment["n_models"] == 2).all() and alignment["estimate"].isna().any()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: f.drop(columns=["raw_output"]), "missing column raw_output"),
        (lambda f: f.assign(parsed_choice=7.0), "column parsed_choice, row 1: 7.0; allowed: 1-4 or null"),
        (lambda f: f.assign(parsed_choice=True), "column parsed_choice, row 1: True; allowed: 1-4 or null"),
        (lambda f: f.assign(correct=1 - f["correct"]), "column correct, row 1"),
        (lambda f: f.assign(item_id=[None] + list(f["item_id"][1:])), "column item_id, row 1: empty"),
        (lambda f: f.assign(answer="E"), "column answer, row 1: 'E'; allowed: 1-4"),
    ],
)
def test_compare_names_the_file_and_column_at_fault(tree, tmp_path, capsys, damage, message):
    root, _ = tree
    path = root / "m2" / "ft-arb_Arab" / "cot" / "heb_Hebr.parquet"
    damage(pd.read_parquet(path)).to_parquet(path)
    assert run(tree, tmp_path / "stats") == 2
    assert f"{path}: {message}" in capsys.readouterr().err
    assert not (tmp_path / "stats" / "effects.csv").exists()


def test_compare_names_an_unreadable_file(tree, tmp_path, capsys):
    root, _ = tree
    path = root / "m1" / "base" / "direct" / "eng_Latn.parquet"
    path.write_text("item_id,correct\n1,true\n")
    assert run(tree, tmp_path / "stats") == 2
    assert f"{path}: not a readable parquet file" in capsys.readouterr().err


@pytest.mark.parametrize("planted", [True, False])
def test_compare_finds_a_planted_interaction_in_passage_correlated_trees_and_no_common_advantage(tmp_path, planted):
    """Two questions per passage with passage effects (xlt.simulate's PASSAGE_CORRELATED),
    the default study's two sources: a Semitic advantage after Arabic alone is the
    interaction, found by the primary test of both models; the same advantage after
    either source is about the targets, not the source, and the primary test finds
    nothing although each source's relatedness row does. One primary row per model."""
    from test_sources import study

    config = {
        **study(),
        "models": {"m1": {"id": "org/m1"}, "m2": {"id": "org/m2"}},
        "data": {},
        "stats": {"bootstrap_samples": 500},
    }
    variants = {"ft-arb_Arab": True, "ft-pes_Arab": not planted}
    scenarios = {
        model: PASSAGE_CORRELATED.with_(n_items=160, baseline=0.4 + 0.1 * k, related_advantage=0.25)
        for k, model in enumerate(("m1", "m2"))
    }
    write_tree(
        tmp_path / "predictions", simulate_predictions(scenarios, language_table(config), seed=21, variants=variants)
    )
    (tmp_path / "config.yaml").write_text(json.dumps(config))
    assert run((tmp_path / "predictions", tmp_path / "config.yaml"), tmp_path / "stats") == 0
    effects = pd.read_csv(tmp_path / "stats" / "effects.csv", keep_default_na=False)
    notes = pd.read_csv(tmp_path / "stats" / "notes.csv", keep_default_na=False)
    primary = effects[effects["role"] == "primary"]
    assert set(zip(primary["model"], primary[SOURCE_COLUMN], primary["prompt"], primary["effect"])) == {
        (m, "", "direct", INTERACTION) for m in ("m1", "m2")
    }
    assert (notes["role"] == "primary").sum() == 2
    assert "bootstrap over passages" in notes.loc[notes["effect"] == INTERACTION, "method"].iloc[0]
    found = primary["p_adjusted"].astype(float) < 0.05
    assert found.all() if planted else not found.any()
    arabic = effects[
        (effects[SOURCE_COLUMN] == "arb_Arab") & (effects["prompt"] == "direct") & (effects["effect"] == "relatedness")
    ]
    assert (arabic["role"] == "secondary").all() and (arabic["estimate"].astype(float) > 0.1).all()


def to_old_layout(root):
    """The tree as the old single-source layout wrote it: the fine-tuned variant `ft`,
    in its folder name and its column."""
    for folder in root.glob("*/ft-arb_Arab"):
        for path in folder.rglob("*.parquet"):
            table = pq.read_table(path)
            pq.write_table(
                table.set_column(table.schema.get_field_index("variant"), "variant", pa.array(["ft"] * table.num_rows)),
                path,
            )
        folder.rename(folder.with_name("ft"))


def test_an_old_single_source_tree_compares_as_today_with_a_note(tree, tmp_path):
    assert run(tree, tmp_path / "today") == 0
    to_old_layout(tree[0])
    assert not list(tree[0].glob("*/ft-arb_Arab")) and len(list(tree[0].glob("*/ft"))) == 3
    assert run(tree, tmp_path / "old") == 0
    for name in ("effects.csv", "alignment.csv", "gains.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "old" / name), pd.read_csv(tmp_path / "today" / name))
    today, old = (pd.read_csv(tmp_path / folder / "notes.csv", keep_default_na=False) for folder in ("today", "old"))
    pd.testing.assert_frame_equal(old.drop(columns="note"), today.drop(columns="note"))
    note = r"(?:m\d|m1, m2, m3): predictions in the old single-source layout \(variant 'ft'\), read as ft-arb_Arab$"
    assert old["note"].str.contains(note, regex=True).all()
    assert (old["note"].str.replace(rf"(^|; ){note}", "", regex=True) == today["note"]).all()
    assert (old.loc[old["model"] == "m2", "note"].str.contains("m2: predictions in the old")).all()


def test_an_old_layout_tree_is_refused_by_a_study_of_several_sources(tree, tmp_path, capsys):
    root, config = tree
    to_old_layout(root)
    two = {**json.loads(config.read_text()), "source_languages": ["arb_Arab", "pes_Arab"]}
    del two["source_language"]
    config.write_text(json.dumps(two))
    assert run(tree, tmp_path / "stats") == 2
    error = capsys.readouterr().err
    assert f"{root}/m1/ft/" in error and ".parquet: variant 'ft' is the old single-source layout's" in error
    assert "the variants are base, ft-arb_Arab, ft-pes_Arab" in error
    assert not (tmp_path / "stats" / "effects.csv").exists()
