"""The cost model (xlt.costs): its arithmetic on a hand-checked case, config/paper.yaml's
run times at least its estimates, and the table in docs/slurm.md current."""

from __future__ import annotations

import copy

import pytest
from snakemake_runs import REPO

from xlt import costs
from xlt.config import load_config
from xlt.errors import XltError

PAPER = REPO / "config" / "paper.yaml"


@pytest.fixture(scope="module")
def paper():
    return load_config(PAPER)


def test_paper_fine_tuning_takes_57_steps_per_epoch(paper):
    """900 examples at 16 per optimizer step, for every model however it makes the 16."""
    for model, entry in paper["models"].items():
        assert costs.examples_per_step(entry["finetune"]) == 16, model
        assert costs.optimizer_steps(paper, model) == 57 * entry["finetune"]["epochs"], model


def test_every_paper_runtime_is_at_least_its_estimate(paper):
    rows = costs.estimates(paper)
    assert {(row.model, row.stage) for row in rows} == {
        (model, stage) for model in paper["models"] for stage in ("finetune", "predict")
    }
    short = [(row.model, row.stage, row.configured, round(row.minutes)) for row in rows if row.configured < row.minutes]
    assert short == []
    # The configured times follow the model: its margin over the estimate, in whole hours.
    assert {(row.model, row.stage): row.configured for row in rows} == {
        (row.model, row.stage): row.runtime for row in rows
    }


def test_a_fine_tuning_estimate_by_hand(paper):
    """Qwen3-4B in one process on one H100: compute and loading, no sharding traffic."""
    steps = 57 * 2
    tokens = steps * 16 * costs.TRAIN_TOKENS_PER_EXAMPLE
    compute = 6 * 4.0e9 * tokens / (989e12 * costs.EFFICIENCY["train"])
    load = 4.0e9 * 2 / (costs.LOAD_GB_PER_S * 1e9)
    assert costs.finetune_minutes(paper, "qwen3-4b") == pytest.approx((compute + load) / 60)
    # Sharded over two nodes, the gathers over InfiniBand dominate DeepSeek-V3's job.
    v3 = costs.finetune_minutes(paper, "deepseek-v3")
    gathers = steps * 1 * 3 * 671e9 * 2 * 15 / 16 / (costs.INFINIBAND_GB_PER_S * 1e9 * costs.EFFICIENCY["network"])
    assert gathers / 60 < v3 < 2 * gathers / 60


def test_a_model_or_gpu_without_figures_stops_with_one_line(paper):
    config = copy.deepcopy(paper)
    config["models"]["qwen3-4b"]["id"] = "someone/unknown-7b"
    with pytest.raises(XltError, match=r"models.qwen3-4b: no parameter count for 'someone/unknown-7b'"):
        costs.estimates(config)
    config = copy.deepcopy(paper)
    config["models"]["qwen3-4b"]["inference"]["resources"]["gpu_model"] = "v100"
    with pytest.raises(XltError, match=r"models.qwen3-4b.inference.resources.gpu_model: 'v100' has no rates"):
        costs.estimates(config)


def test_the_docs_table_is_current(paper):
    """docs/slurm.md holds what `python -m xlt.costs --write docs/slurm.md` writes."""
    text = (REPO / "docs" / "slurm.md").read_text(encoding="utf-8")
    assert costs.render(costs.estimates(paper)) in text
