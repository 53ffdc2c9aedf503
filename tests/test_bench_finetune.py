"""bench/finetune.py runs on what a finished run prepared: both recipes train on the
same examples and the table names the CPU (the bench had fallen behind the stage's
signature once, unnoticed until it was run by hand)."""

import pandas as pd
from scripts import load_script

from xlt import paths
from xlt.data import read_prepared


def test_both_recipes_train_on_a_finished_runs_examples(tiny_study, tmp_path):
    workdir, configfile = tiny_study
    trained_on = read_prepared(workdir / paths.TRAINING.format(source="arb_Arab"), split="train")
    out = tmp_path / "finetune.csv"
    load_script("bench/finetune.py").main(
        ["--config", str(configfile), "--workdir", str(workdir), "--model", "tiny-dense", "--steps", "2"]
        + ["--out", str(out)]
    )
    rows = pd.read_csv(out)
    assert list(rows["method"]) == ["xlt", "baseline_pad_to_max_length"]
    assert list(rows["steps"]) == [2, 2]
    assert (rows["tokens"] > 0).all()
    assert rows["padding_share"].iloc[0] < rows["padding_share"].iloc[1]
    assert rows["cpu"].str.len().gt(0).all() and rows["source"].eq("arb_Arab").all()
    assert rows["examples"].eq(len(trained_on)).all()
