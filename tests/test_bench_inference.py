"""bench/inference.py's main path on what a finished run prepared: every method's row,
the ratios against the naive generate loop, and the agreements, with the CPU named
(llama.cpp and lm-evaluation-harness, extras of `.[bench]`, are left out here)."""

import json

from scripts import load_script

from xlt.config import load_config


def test_the_engine_against_the_naive_loop_on_a_finished_runs_model(tiny_study, tmp_path):
    workdir, configfile = tiny_study
    load_script("bench/inference.py").main(
        ["--config", str(configfile), "--model", "tiny-dense", "--items-per-lang", "1", "--threads", "1"]
        + ["--base", str(workdir / "results" / "models" / "tiny-dense" / "base"), "--skip-harness"]
        + ["--out", str(tmp_path)]
    )
    result = json.loads((tmp_path / "inference.json").read_text(encoding="utf-8"))
    methods = {(row["prompt"], row["method"]) for row in result["rows"]}
    for prompt in ("direct", "cot", "direct + cot"):
        assert {(prompt, "engine"), (prompt, "naive generate loop")} <= methods
    assert ("direct + cot", "engine, shared prompt pass") in methods
    ratios = [row["speedup_vs_naive"] for row in result["rows"] if row.get("speedup_vs_naive") is not None]
    assert ratios and all(ratio > 0 for ratio in ratios)
    assert result["items"] == len(load_config(str(configfile))["languages"])  # one item per language
    assert all(0 <= share <= 1 for share in result["agreement"].values())
    assert "CPU:" in (tmp_path / "inference.md").read_text(encoding="utf-8")
