"""`xlt compare` (and the workflow's compare job) on an incomplete tree: a missing cell
would change estimates without a word (a gain averaged over fewer languages, an effect
that disappears), so it is an error naming the cells unless allowed, and then every
affected notes.csv row names them. Answer keys that differ between cells are an error."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_compare import CONFIG, write_foreign_tree

from xlt.cli import main
from xlt.completeness import check_complete
from xlt.errors import XltError
from xlt.languages import language_table
from xlt.simulate import Scenario, simulate_predictions, study_variants


@pytest.fixture
def tree(tmp_path):
    scenarios = {model: Scenario(n_items=30, baseline=0.4, ft_gain=0.2, cot_gain=0.1) for model in ("m1", "m2")}
    write_foreign_tree(
        tmp_path / "predictions",
        simulate_predictions(scenarios, language_table(CONFIG), seed=5, variants=study_variants(CONFIG)),
    )
    return tmp_path / "predictions"


def _config(tmp_path, **stats):
    path = tmp_path / "config.yaml"
    path.write_text(
        json.dumps({**CONFIG, "stats": {**CONFIG["stats"], **stats}, "data": {}, "models": {"m1": {"id": "org/m1"}}})
    )
    return path


def _compare(root, config, out, *flags):
    return main(["compare", "--predictions", str(root), "--config", str(config), "--out", str(out), *flags])


def test_a_missing_language_file_is_an_error_naming_it(tree, tmp_path, capsys):
    (tree / "m2" / "ft-arb_Arab" / "direct" / "heb_Hebr.parquet").unlink()
    assert _compare(tree, _config(tmp_path), tmp_path / "stats") == 2
    err = capsys.readouterr().err
    assert err == (
        f"xlt: error: {tree}: 1 cell(s) missing or incomplete: m2/ft-arb_Arab/direct/heb_Hebr.parquet; "
        "every model needs every item of every variant, prompt and language. "
        "Add them, or allow it (xlt compare --allow-missing, or stats.allow_missing_cells: true) and "
        "notes.csv names them\n"
    )
    assert not (tmp_path / "stats").exists()


def test_a_cell_missing_items_is_an_error_naming_it(tree, tmp_path, capsys):
    path = tree / "m1" / "base" / "cot" / "eng_Latn.parquet"
    pd.read_parquet(path).iloc[5:].to_parquet(path)
    assert _compare(tree, _config(tmp_path), tmp_path / "stats") == 2
    assert "1 cell(s) missing or incomplete: m1/base/cot/eng_Latn.parquet (25 of 30 items);" in capsys.readouterr().err


def test_every_related_language_missing_is_an_error(tree, tmp_path, capsys):
    for lang in ("heb_Hebr", "mlt_Latn"):
        for path in tree.glob(f"*/*/*/{lang}.parquet"):
            path.unlink()
    assert _compare(tree, _config(tmp_path), tmp_path / "stats") == 2
    assert (
        "16 cell(s) missing or incomplete: m1/base/cot/heb_Hebr.parquet, m1/base/cot/mlt_Latn.parquet"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize("how", ["flag", "config"])
def test_allowed_missing_cells_are_named_in_every_row_they_affect(tree, tmp_path, how):
    (tree / "m2" / "ft-arb_Arab" / "direct" / "heb_Hebr.parquet").unlink()
    flags, stats = (["--allow-missing"], {}) if how == "flag" else ([], {"allow_missing_cells": True})
    assert _compare(tree, _config(tmp_path, **stats), tmp_path / "stats", *flags) == 0
    notes = pd.read_csv(tmp_path / "stats" / "notes.csv", keep_default_na=False)
    named = notes["note"].str.contains(
        "computed without missing or incomplete cell(s) m2/ft-arb_Arab/direct/heb_Hebr.parquet", regex=False
    )
    affected = notes["model"].isin(["m2", "", "pooled"]) & notes["prompt"].isin(["direct", ""])
    assert affected.any() and (~affected).any()
    assert (named == affected).all()


def test_answer_keys_that_differ_between_models_are_an_error(tree, tmp_path, capsys):
    path = tree / "m2" / "base" / "cot" / "arb_Arab.parquet"
    frame = pd.read_parquet(path)
    answer = int(frame.loc[0, "answer"]) % 4 + 1
    frame.loc[0, "answer"] = str(answer)
    frame.loc[0, "correct"] = int(frame.loc[0, "parsed_choice"] == answer)
    frame.to_parquet(path)
    assert _compare(tree, _config(tmp_path), tmp_path / "stats") == 2
    err = capsys.readouterr().err
    assert (
        f"xlt: error: {tree}: item " in err and "(arb_Arab) has answer" in err and "m2/base/cot/arb_Arab.parquet" in err
    )
    assert err.endswith("(1 item(s) differ); every model must be scored against one answer key\n")


def test_the_workflow_check_is_the_same_function():
    items = pd.DataFrame(
        {
            "model": ["m"] * 2,
            "variant": ["base"] * 2,
            "prompt": ["direct"] * 2,
            "lang": ["arb_Arab", "heb_Hebr"],
            "item_id": ["x#1"] * 2,
            "answer": [1, 1],
        }
    )
    assert check_complete(items, ["arb_Arab", "heb_Hebr"], allow_missing=False, source="items.parquet") == []
    with pytest.raises(
        XltError, match="^items.parquet: 1 cell\\(s\\) missing or incomplete: m/base/direct/eng_Latn.parquet;"
    ):
        check_complete(items, ["arb_Arab", "heb_Hebr", "eng_Latn"], allow_missing=False, source="items.parquet")


@pytest.mark.parametrize("under", [False, True])
def test_compare_out_naming_a_file(tree, tmp_path, capsys, under):
    blocker = tmp_path / "stats"
    blocker.write_text("a file")
    out = blocker / "sub" if under else blocker
    assert _compare(tree, _config(tmp_path), out) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"xlt: error: {out}/effects.csv: cannot make its folder {out} (") and err.count("\n") == 1
    assert blocker.read_text() == "a file"


def test_a_missing_base_direct_cell_is_named_in_the_cot_gain_rows_too(tree, tmp_path):
    """base/direct is the `before` of the CoT gain, reported under the cot prompt."""
    (tree / "m2" / "base" / "direct" / "heb_Hebr.parquet").unlink()
    assert _compare(tree, _config(tmp_path), tmp_path / "stats", "--allow-missing") == 0
    notes = pd.read_csv(tmp_path / "stats" / "notes.csv", keep_default_na=False)
    named = notes["note"].str.contains("m2/base/direct/heb_Hebr.parquet", regex=False)
    assert named[(notes["model"] == "m2") & (notes["prompt"] == "cot")].any()
    assert not named[notes["model"] == "m1"].any()
