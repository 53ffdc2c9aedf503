"""bench/floor.py's counting: job times from a Snakemake log, and a predict job's tokens
with the shared prefix counted once per item."""

import json

import pandas as pd
from scripts import load_script


def _floor():
    return load_script("bench/floor.py")


LOG = """Building DAG of jobs...
[Sun Dec  6 23:59:45 2026]
localrule prepare_model:
    output: results/models/m/base
    jobid: 9
    wildcards: model=m
    resources: tmpdir=/tmp

[Sun Dec  6 23:59:50 2026]
rule predict:
    jobid: 3
    wildcards: model=m, variant=base

[Mon Dec  7 00:00:02 2026]
Finished jobid: 9 (Rule: prepare_model)
[Mon Dec  7 00:01:00 2026]
Finished jobid: 3 (Rule: predict)
"""


def test_job_times_pair_each_start_with_its_finish(tmp_path):
    log = tmp_path / "run.snakemake.log"
    log.write_text(LOG)
    jobs = _floor().job_times(log)
    assert [(rule, wildcards, end - start) for rule, wildcards, start, end in jobs] == [
        ("prepare_model", "model=m", 17.0),
        ("predict", "model=m, variant=base", 70.0),
    ]


def test_predict_flop_counts_an_items_shared_prompts_once(tmp_path):
    floor = _floor()
    rows = {
        "direct": (100, 2),
        "cot": (110, 40),
        "choice": (100, 0),
        "loglik": (90, 0),
        "cloze": (80, 0),
    }
    for prompt, (prompt_tokens, output_tokens) in rows.items():
        (tmp_path / prompt).mkdir()
        raw = json.dumps([{"tokens": tokens} for tokens in (1, 2, 3, 4)]) if prompt == "cloze" else ""
        frame = {
            "lang": ["eng_Latn"],
            "item_id": ["p#1"],
            "prompt": [prompt],
            "n_prompt_tokens": [prompt_tokens],
            "n_output_tokens": [output_tokens],
        }
        pd.DataFrame({**frame, "raw_output": [raw]}).to_parquet(tmp_path / prompt / "eng_Latn.parquet")
    shape = floor.ModelShape(active_parameters=1000, output_layer=10)
    flop, tokens = floor.predict_flop(tmp_path, shape)
    # direct, CoT and choice: one pass of the longest (110); loglik and cloze their own 90
    # and 80; 42 generated; the cloze options' 10 tokens scored twice.
    assert tokens == {"prompt_tokens": 280, "generated_tokens": 42, "scored_tokens": 20}
    assert flop == 2 * 1000 * (280 + 42 + 20) + 2 * 10 * (42 + 3 + 20)
