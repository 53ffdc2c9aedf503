import json

import pandas as pd
import pytest

from xlt.cli import main
from xlt.errors import XltError
from xlt.languages import language_table
from xlt.paths import ACCURACY_COLUMNS
from xlt.scoring import accuracy_table, load_predictions, rescore
from xlt.simulate import Scenario, simulate_predictions, study_variants

CONFIG = {
    "languages": {
        "arb_Arab": {"family": "Semitic", "script": "Arab"},
        "heb_Hebr": {"family": "Semitic", "script": "Hebr"},
        "eng_Latn": {"family": "Indo-European", "script": "Latn"},
    },
    "source_language": "arb_Arab",
    "related_families": ["Semitic"],
}


def label_scores(choice: int) -> str:
    """A choice row's raw_output, the four label log-probabilities, with `choice` likeliest."""
    return json.dumps({letter: -0.5 if number == choice else -2.0 for number, letter in enumerate("ABCD", 1)})


def write_tree(root, frame):
    for (model, variant, prompt, lang), rows in frame.groupby(["model", "variant", "prompt", "lang"]):
        path = root / model / variant / prompt / f"{lang}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows.to_parquet(path, index=False)


@pytest.fixture
def tree(tmp_path):
    frame = simulate_predictions(
        {model: Scenario(n_items=40, related_advantage=0.1) for model in ("m1", "m2", "m3")},
        language_table(CONFIG),
        variants=study_variants(CONFIG),
    )
    write_tree(tmp_path / "predictions", frame)
    return tmp_path / "predictions", frame


def test_accuracy_has_interval_and_parse_rate(tree):
    root, frame = tree
    table = accuracy_table(load_predictions(root), language_table(CONFIG), confidence=0.95)
    assert list(table.columns) == list(ACCURACY_COLUMNS)
    assert len(table) == 3 * 2 * 2 * 3
    assert ((table.ci_low <= table.accuracy) & (table.accuracy <= table.ci_high)).all()
    expected = frame.groupby(["model", "variant", "prompt", "lang"])["parsed_choice"].apply(lambda s: s.notna().mean())
    got = table.set_index(["model", "variant", "prompt", "lang"])["parse_rate"]
    assert (got - expected.loc[got.index]).abs().max() < 1e-12


def test_rescore_uses_the_current_extractor():
    frame = simulate_predictions({"m": Scenario(n_items=2)}, language_table(CONFIG), variants=study_variants(CONFIG))
    frame = frame[(frame.variant == "base") & (frame.prompt == "direct") & (frame.lang == "eng_Latn")].reset_index(
        drop=True
    )
    frame["raw_output"] = ["Answer: Rome", "The answer is D."]
    frame["parsed_choice"] = pd.array([None, None], dtype="Int64")
    data = pd.DataFrame(
        {
            "lang": "eng_Latn",
            "item_id": frame["item_id"],
            "mc_answer1": "London",
            "mc_answer2": "Paris",
            "mc_answer3": "Rome",
            "mc_answer4": "Oslo",
        }
    )
    rescored = rescore(frame, data)
    assert rescored["parsed_choice"].tolist() == [3, 4]
    assert rescored["correct"].tolist() == [False, False]


def test_xlt_compare_runs_on_a_foreign_tree(tree, tmp_path, capsys):
    root, _ = tree
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({**CONFIG, "data": {}, "models": {"m1": {"id": "org/m1"}}}))
    assert main(["compare", "--predictions", str(root), "--config", str(config), "--out", str(tmp_path / "stats")]) == 0
    effects = pd.read_csv(tmp_path / "stats" / "effects.csv")
    # Each model's rows, and the pooled model's across all three.
    assert set(effects["model"]) == {"m1", "m2", "m3", "pooled"}
    assert "relatedness" in set(effects["effect"])
    assert "relatedness_gee" in set(effects.loc[effects["model"] == "pooled", "effect"])
    alignment = pd.read_csv(tmp_path / "stats" / "alignment.csv")
    assert alignment.set_index("statistic").loc["pearson:ft_gain~cot_gain:models", "n_models"] == 3


def test_xlt_compare_rejects_a_malformed_file(tree, tmp_path, capsys):
    root, _ = tree
    path = root / "m1" / "ft-arb_Arab" / "cot" / "heb_Hebr.parquet"
    pd.read_parquet(path).drop(columns=["raw_output"]).to_parquet(path)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({**CONFIG, "data": {}, "models": {"m1": {"id": "org/m1"}}}))
    assert main(["compare", "--predictions", str(root), "--config", str(config), "--out", str(tmp_path / "stats")]) == 2
    assert f"{path}: missing column raw_output" in capsys.readouterr().err


def test_xlt_compare_reads_categorical_columns_as_their_values(tree, tmp_path):
    """A tree written from one frame with categorical key columns (each file keeps every
    category of the frame) compares as the same tree written plainly."""
    root, frame = tree
    categorical = frame.astype({column: "category" for column in ("item_id", "lang", "model", "variant", "prompt")})
    write_tree(tmp_path / "categorical", categorical.assign(parsed_choice=frame["parsed_choice"].astype("category")))
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({**CONFIG, "data": {}, "models": {"m1": {"id": "org/m1"}}}))
    for name, tree_root in (("plain", root), ("categorical", tmp_path / "categorical")):
        out = str(tmp_path / f"stats-{name}")
        assert main(["compare", "--predictions", str(tree_root), "--config", str(config), "--out", out]) == 0
    plain, read = (pd.read_csv(tmp_path / f"stats-{name}" / "effects.csv") for name in ("plain", "categorical"))
    pd.testing.assert_frame_equal(plain, read)


def test_wrong_layout_value_is_named(tree):
    root, _ = tree
    path = root / "m2" / "base" / "direct" / "eng_Latn.parquet"
    frame = pd.read_parquet(path)
    frame.loc[3, "variant"] = "ft-arb_Arab"
    frame.to_parquet(path)
    with pytest.raises(
        XltError,
        match=r"eng_Latn.parquet: column variant, row 4: 'ft-arb_Arab' but the file's place in the layout says 'base'",
    ):
        load_predictions(root)


def test_xlt_extract_adds_parsed_choice(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"output": "الإجابة: ب", "options": ["a", "b", "c", "d"], "lang": "arb_Arab"}, ensure_ascii=False)
        + "\n"
        + json.dumps({"output": "A man walked in.", "options": ["x", "y", "z", "w"], "lang": "eng_Latn"})
        + "\n"
    )
    assert main(["extract", str(source)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["parsed_choice"] for line in lines] == [2, None]
    assert lines[0]["lang"] == "arb_Arab"
