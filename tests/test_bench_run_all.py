"""bench/run_all.py: its tables read what bench/inference.py and bench/finetune.py write (the
committed one-run results), and it stops before a run that would lack llama.cpp's rows."""

import json

import pandas as pd
import pytest
from scripts import REPO, load_script

RESULTS = REPO / "bench" / "results" / "all"


def test_the_tables_carry_every_ratio_of_the_parts():
    run_all = load_script("bench/run_all.py")
    inference = run_all.inference_table(json.loads((RESULTS / "inference.json").read_text(encoding="utf-8")))
    for column in ("speedup_vs_naive", "engine_speedup", "xlt_speedup", "best_batch"):
        assert column in inference.splitlines()[0]
    assert "llama.cpp, one sequence" in inference and "lm-evaluation-harness, batch 1" in inference
    finetune = run_all.finetune_table([pd.read_csv(path) for path in sorted(RESULTS.glob("finetune-*.csv"))])
    assert "speedup_cpu" in finetune.splitlines()[0] and finetune.count("baseline_pad_to_max_length") == 2


def test_it_stops_first_without_llama_cpp(monkeypatch, tmp_path):
    run_all = load_script("bench/run_all.py")
    monkeypatch.setattr(run_all.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SystemExit, match="llama-cpp-python is not installed"):
        run_all.main(["--workdir", str(tmp_path), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
