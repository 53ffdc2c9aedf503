"""bench/floor.py's counting: job times from a Snakemake log, and a predict job's tokens
with every shared prefix counted once."""

import hypothesis.strategies as st
import pandas as pd
from hypothesis import given
from scripts import load_script

from xlt.inference.requests import Encoded


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


@given(st.lists(st.lists(st.integers(0, 3), max_size=6), max_size=8))
def test_prefix_tree_tokens_counts_each_distinct_prefix_once(rows):
    distinct = {tuple(row[:end]) for row in rows for end in range(1, len(row) + 1)}
    assert _floor().prefix_tree_tokens(rows) == len(distinct)


def test_prompt_work_feeds_shared_prefixes_once_and_option_tails_after_their_prompt():
    floor = _floor()
    encoded = [
        # direct and CoT share the passage (1, 2, 3) and the options (4); the letters score
        # from the prompt's last logits, so nothing is fed for them
        Encoded([1, 2, 3, 4, 5], "", [[9], [8]], True, None),
        Encoded([1, 2, 3, 4, 6], "", [[9]], False, [7]),
        # a rotation shares the passage only
        Encoded([1, 2, 3, 7, 5], "", [[9], [8]], True, None),
        # a cloze prompt: its two-token option is fed after it (one token scored after the
        # first), its one-token option is read from the prompt's logits
        Encoded([1, 2, 3, 8], "", [[5, 6], [4]], True, None),
    ]
    work = floor.PromptWork.of(encoded)
    # trie: 1 2 3 | 4 5, 4 6 | 7 5 | 8 5
    assert work == floor.PromptWork(tokens=3 + 3 + 2 + 2, rows=4, scored=1)


def test_predict_flop_adds_the_generated_tokens_of_each_variant(tmp_path):
    floor = _floor()
    for prompt, generated in (("direct", 2), ("cot", 40), ("cloze", 0)):
        (tmp_path / prompt).mkdir()
        pd.DataFrame({"n_output_tokens": [generated, None]}).to_parquet(tmp_path / prompt / "eng_Latn.parquet")
    shape = floor.ModelShape(active_parameters=1000, output_layer=10)
    work = floor.PromptWork(tokens=300, rows=7, scored=5)
    flop, tokens = floor.predict_flop(tmp_path, shape, work)
    assert tokens == {"prompt_tokens": 300, "generated_tokens": 42, "scored_tokens": 5}
    assert flop == 2 * 1000 * (300 + 42) + 2 * 10 * (42 + 7 + 5)
