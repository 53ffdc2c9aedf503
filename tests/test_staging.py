"""Staging (xlt.staging) and the FP8 conversion (xlt.fp8): Hub models downloaded once at
a pinned commit into staging.dir, loaded from there offline by the model jobs; a
block-scaled FP8 checkpoint converted to bfloat16 as a reference de-quantisation says;
and the plan of the paper study on SLURM, staging first and no job downloading."""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
import types

import pandas as pd
import pytest
from snakemake_runs import REPO, run_cli, shipped_study, snakemake_command

from xlt.config import load_config
from xlt.errors import XltError
from xlt.models import (
    MANIFEST,
    ModelSpec,
    load_model,
    load_tokenizer,
    prepare_model,
    resolve_checkpoint,
    serving_checkpoint,
)
from xlt.staging import STAGED_RECORD, HubRepo, check_cluster_config, stage, unpinned_revisions

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """huggingface_hub at its boundary: a repository on disk (a tiny model's folder)
    that `model_info` resolves to COMMIT and `snapshot_download` copies by pattern."""

    def __init__(self, folder, extra_files=()):
        self.folder, self.downloads = folder, []
        for name in extra_files:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text("not a model file")
        hub = self

        class HfApi:
            def repo_info(self, repo_id, revision=None, repo_type=None):
                return types.SimpleNamespace(sha=COMMIT)

        def snapshot_download(repo_id, repo_type, revision, local_dir, allow_patterns, ignore_patterns):
            import fnmatch

            hub.downloads.append({"repo_id": repo_id, "repo_type": repo_type, "revision": revision})
            for path in hub.folder.rglob("*"):
                name = str(path.relative_to(hub.folder))
                allowed = allow_patterns is None or any(fnmatch.fnmatch(name, p) for p in allow_patterns)
                if path.is_file() and allowed and not any(fnmatch.fnmatch(name, p) for p in ignore_patterns or []):
                    (local_dir / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, local_dir / name)
            (local_dir / ".cache").mkdir(parents=True, exist_ok=True)
            return str(local_dir)

        self.module = types.SimpleNamespace(HfApi=HfApi, snapshot_download=snapshot_download)


def test_a_hub_model_is_staged_at_its_commit_and_loads_offline(tiny_models, tmp_path, monkeypatch):
    """The staged folder holds the model's safetensors, config and tokenizer (no pickles,
    no Meta `original/` weights, no download bookkeeping) and a record of the commit;
    prepare_model points the base at it, and the model and tokenizer load from it with
    the hub offline."""
    source = tmp_path / "hub"
    shutil.copytree(tiny_models["tiny-dense"], source)
    hub = FakeHub(source, extra_files=["pytorch_model.bin", "original/consolidated.00.pth", "original/params.json"])
    staged = tmp_path / "staging" / "models" / "tiny"
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "huggingface_hub", hub.module)
        record = stage(HubRepo("tiny", "org/tiny", "main"), staged)
    assert hub.downloads == [{"repo_id": "org/tiny", "repo_type": "model", "revision": COMMIT}]
    assert record["commit"] == COMMIT and json.loads((staged / STAGED_RECORD).read_text()) == record
    assert "model.safetensors" in record["files"] and "config.json" in record["files"]
    assert not any(
        name.endswith((".bin", ".pth")) or name.startswith((".cache", "original/")) for name in record["files"]
    )
    assert not staged.with_name(".tiny.partial").exists()

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base = tmp_path / "base"
    spec = ModelSpec("tiny", id="org/tiny", revision="main")
    prepare_model(spec, base, staged=staged)
    manifest = json.loads((base / MANIFEST).read_text())
    assert manifest == {
        "kind": "staged",
        "id": "org/tiny",
        "revision": "main",
        "commit": COMMIT,
        "path": str(staged.resolve()),
    }
    assert resolve_checkpoint(base) == (str(staged.resolve()), None) == serving_checkpoint(base)
    shutil.rmtree(source)  # nothing of the "Hub" is left to read
    assert load_model(base, spec).config.hidden_size == 32 and load_tokenizer(base, spec).pad_token_id is not None


def test_a_staged_folder_of_another_revision_is_refused(tiny_models, tmp_path, monkeypatch):
    source = tmp_path / "hub"
    shutil.copytree(tiny_models["tiny-dense"], source)
    staged = tmp_path / "staged"
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "huggingface_hub", FakeHub(source).module)
        stage(HubRepo("tiny", "org/tiny", "main"), staged)
    with pytest.raises(XltError, match=r"holds org/tiny at revision 'main', the config asks for org/tiny at 'v2'"):
        prepare_model(ModelSpec("tiny", id="org/tiny", revision="v2"), tmp_path / "base", staged=staged)


def test_belebele_is_staged_and_prepared_from_the_staged_folder_offline(repo, tmp_path, monkeypatch):
    """A Hub dataset with one config per language (Belebele's layout, the fixture's
    rows) is staged whole at its commit; prepare_data reads the staged folder with the
    hub offline and splits it as it splits the Hub's rows."""
    source = tmp_path / "hub"
    (source / "data").mkdir(parents=True)
    langs = ["arb_Arab", "eng_Latn"]
    configs = "".join(
        f"- config_name: {lang}\n  data_files:\n  - split: test\n    path: data/{lang}.jsonl\n" for lang in langs
    )
    (source / "README.md").write_text(f"---\nconfigs:\n{configs}---\n")
    for lang in langs:
        shutil.copy2(repo / "data" / "belebele_fixture" / f"{lang}.jsonl", source / "data" / f"{lang}.jsonl")
    hub = FakeHub(source)
    staged = tmp_path / "staging" / "datasets" / "belebele"
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "huggingface_hub", hub.module)
        record = stage(HubRepo("belebele", "facebook/belebele", "main", "dataset"), staged)
    assert hub.downloads == [{"repo_id": "facebook/belebele", "repo_type": "dataset", "revision": COMMIT}]
    assert sorted(record["files"]) == ["README.md", "data/arb_Arab.jsonl", "data/eng_Latn.jsonl"]

    from xlt.settings import PrepareDataSettings
    from xlt.stages import prepare_data

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    shutil.rmtree(source)
    data = {
        **load_config(repo / "config" / "config.yaml")["data"],
        "source": "hub",
        "hub_id": "facebook/belebele",
        "hub_revision": "main",
    }
    from_staged = [str(tmp_path / "staged" / f"{lang}.parquet") for lang in langs]
    prepare_data(
        settings=PrepareDataSettings(data=data, langs=langs, all_test=False, staged=str(staged)), outputs=from_staged
    )
    from_fixture = [str(tmp_path / "fixture" / f"{lang}.parquet") for lang in langs]
    fixture = {**data, "source": "fixture", "fixture_dir": str(repo / "data" / "belebele_fixture")}
    prepare_data(settings=PrepareDataSettings(data=fixture, langs=langs, all_test=False), outputs=from_fixture)
    for staged_file, fixture_file in zip(from_staged, from_fixture):
        assert pd.read_parquet(staged_file).equals(pd.read_parquet(fixture_file))


def test_a_cluster_run_needs_pinned_revisions_and_a_staging_folder(repo):
    """On a cluster: every unpinned Hub revision is named in one line unless
    staging.allow_unpinned; Hub models without staging.dir stop too."""
    paper = load_config(repo / "config" / "paper.yaml")
    assert unpinned_revisions(paper) == ["data.hub_revision 'main'"]
    check_cluster_config(paper, "paper.yaml")  # allow_unpinned: true, until Belebele is pinned
    strict = {**paper, "staging": {**paper["staging"], "allow_unpinned": False}}
    with pytest.raises(
        XltError, match=r"^paper.yaml: data.hub_revision 'main' is not a commit hash .* staging.allow_unpinned: true"
    ):
        check_cluster_config(strict, "paper.yaml")
    unstaged = {**paper, "staging": {"dir": None, "allow_unpinned": True}}
    with pytest.raises(XltError, match=r"models qwen3-4b, .*deepseek-v3 are Hub ids and staging.dir is not set"):
        check_cluster_config(unstaged, "paper.yaml")


def planned_commands(printed: str) -> list[tuple[str, str, str]]:
    """(rule, model or dataset wildcard, shell command) of each job of `snakemake -n -p` output."""
    parts = re.split(r"^(?:local)?rule (\w+):$", printed, flags=re.MULTILINE)[1:]
    jobs = []
    for rule, body in zip(parts[0::2], parts[1::2]):
        model = re.search(r"^ +wildcards: .*?(?:model|dataset)=([^,\s]+)", body, flags=re.MULTILINE)
        shell = re.search(r"^Shell command: (.*)$", body, flags=re.MULTILINE)
        jobs.append((rule, model.group(1) if model else None, shell.group(1) if shell else ""))
    return jobs


@pytest.mark.plans
def test_the_paper_study_on_slurm_stages_every_model_first_and_no_job_downloads(repo, tmp_path):
    """`snakemake -n --profile profiles/slurm --configfile config/paper.yaml`: every Hub
    model is staged by a local job, DeepSeek-V3 converted once, and every model job runs
    offline from the staged folders; with allow_unpinned off the plan stops at once."""
    study = shipped_study(tmp_path)
    profile = str(REPO / "profiles" / "slurm")
    jobs = planned_commands(
        snakemake_command(REPO / "Snakefile", study, study / "config" / "paper.yaml", "-n", "-p", "--profile", profile)
    )
    paper = load_config(repo / "config" / "paper.yaml")
    assert sorted(model for rule, model, _ in jobs if rule == "stage_model") == sorted(paper["models"])
    assert [model for rule, model, _ in jobs if rule == "convert_fp8"] == ["deepseek-v3"]
    model_jobs = [
        (rule, model, shell)
        for rule, model, shell in jobs
        if rule in ("prepare_model", "convert_fp8", "finetune", "finetune_control", "predict")
    ]
    # 7 models: prepared, fine-tuned on two sources and once as the format-only control,
    # each of their 4 variants predicted.
    assert len(model_jobs) == 1 + 7 + 14 + 7 + 28
    for rule, model, shell in model_jobs:
        assert shell.startswith("export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1; "), (
            f"{rule} {model}: {shell[:120]}"
        )
        if rule == "prepare_model":
            assert f'"staged": "staging/models/{model}"' in shell
            assert ('"converted": "staging/converted/deepseek-v3"' in shell) == (model == "deepseek-v3")
    assert sorted(dataset for rule, dataset, _ in jobs if rule == "stage_dataset") == [
        "belebele",
        "training-arb_Arab",
        "training-pes_Arab",
    ]
    (prepare_data,) = [shell for rule, _, shell in jobs if rule == "prepare_data"]
    assert '"staged": "staging/datasets/belebele"' in prepare_data
    (prepare_training,) = [shell for rule, _, shell in jobs if rule == "prepare_training"]
    assert (
        '"staged": {"arb_Arab": "staging/datasets/training-arb_Arab", "pes_Arab": "staging/datasets/training-pes_Arab"}'
        in prepare_training
    )
    strict = (study / "config" / "paper.yaml").read_text().replace("allow_unpinned: true", "allow_unpinned: false")
    (study / "config" / "strict.yaml").write_text(strict)
    refused = run_cli(study, study / "config" / "strict.yaml", "-n", "--profile", profile)
    assert (
        refused.returncode != 0 and "data.hub_revision 'main' is not a commit hash" in refused.stdout + refused.stderr
    )


def write_fp8_checkpoint(out_dir, block, seed=0):
    """A tiny DeepSeek-V3 saved as the Hub stores V3: every linear weight of its layers
    float8_e4m3fn with a float32 `_scale_inv` per block (the last blocks cut at the
    edges: q_lora_rank 24 and kv_lora_rank 20 are not multiples of 16), the rest
    bfloat16, and a quantization_config. Returns the FP8 tensors and their scales."""
    import torch
    from safetensors.torch import load_file, save_file
    from tiny_models import build_tiny_model

    folder = build_tiny_model(out_dir, "deepseek-v3", chat=True, seed=seed)
    weights = load_file(str(folder / "model.safetensors"))
    generator = torch.Generator().manual_seed(seed)
    stored, quantized = {}, {}
    for name, value in weights.items():
        if name.startswith("model.layers.") and name.endswith("proj.weight") and value.dim() == 2:
            rows, columns = value.shape
            scales = (
                torch.rand(math.ceil(rows / block[0]), math.ceil(columns / block[1]), generator=generator) / 100 + 1e-3
            )
            fp8 = (torch.randn(rows, columns, generator=generator) * 50).clamp(-448, 448).to(torch.float8_e4m3fn)
            stored[name], stored[name + "_scale_inv"] = fp8, scales
            quantized[name] = (fp8, scales)
        else:
            stored[name] = value.to(torch.bfloat16)
    (folder / "model.safetensors").unlink()
    # every scale in the first shard, the weights split over both: some scales lie in
    # another shard than their weight, as an index lets them
    scales = sorted(name for name in stored if name.endswith("_scale_inv"))
    names = sorted(name for name in stored if name not in scales)
    halves = {
        "model-00001-of-00002.safetensors": scales + names[: len(names) // 2],
        "model-00002-of-00002.safetensors": names[len(names) // 2 :],
    }
    for shard, members in halves.items():
        save_file({name: stored[name] for name in members}, str(folder / shard), metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {name: shard for shard, members in halves.items() for name in members}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "fp8",
        "fmt": "e4m3",
        "activation_scheme": "dynamic",
        "weight_block_size": list(block),
    }
    (folder / "config.json").write_text(json.dumps(config))
    assert any(
        weight_map_shard != index["weight_map"][name + "_scale_inv"]
        for name, weight_map_shard in index["weight_map"].items()
        if name in quantized
    )
    return folder, quantized


def reference_dequantisation(fp8, scales, block):
    """Block by block, as DeepSeek's weight_dequant defines it: each block's FP8 values
    times its factor."""
    import torch

    out = torch.empty(fp8.shape, dtype=torch.float32)
    for i in range(scales.shape[0]):
        for j in range(scales.shape[1]):
            rows, columns = slice(i * block[0], (i + 1) * block[0]), slice(j * block[1], (j + 1) * block[1])
            out[rows, columns] = fp8[rows, columns].float() * scales[i, j]
    return out.to(torch.bfloat16)


def test_an_fp8_checkpoint_converts_to_the_reference_dequantisation(tmp_path):
    """Every FP8 weight of a tiny block-scaled DeepSeek-V3 (scales in another shard than
    some of their weights) equals the block-by-block reference; the converted config
    has no quantization_config, and transformers loads it as plain bfloat16 weights."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    from xlt.fp8 import CONVERTED_RECORD, convert_fp8_checkpoint

    block = (16, 16)
    source, quantized = write_fp8_checkpoint(tmp_path / "fp8", block)
    out = tmp_path / "converted"
    # a shard left by a killed conversion of another checkpoint must not be reused
    stale = tmp_path / ".converted.partial"
    stale.mkdir()
    save_file({name: torch.zeros(1) for name in quantized}, str(stale / "model-00002-of-00002.safetensors"))
    record = convert_fp8_checkpoint(source, out)
    assert (
        record["dequantized_tensors"] == len(quantized) and json.loads((out / CONVERTED_RECORD).read_text()) == record
    )
    assert not stale.exists() and not (out / ".origin.json").exists()
    index = json.loads((out / "model.safetensors.index.json").read_text())["weight_map"]
    assert not any(name.endswith("_scale_inv") for name in index)
    for name, (fp8, scales) in quantized.items():
        with safe_open(str(out / index[name]), "pt") as handle:
            converted = handle.get_tensor(name)
        assert converted.dtype == torch.bfloat16
        assert torch.equal(converted, reference_dequantisation(fp8, scales, block)), name
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16)
    assert getattr(model, "hf_quantizer", None) is None
    layer = dict(model.named_parameters())
    some = next(iter(quantized))
    assert torch.equal(layer[some], reference_dequantisation(*quantized[some], block))
    assert (out / "tokenizer.json").is_file()


def test_a_wrong_scale_grid_or_a_plain_checkpoint_is_refused(tmp_path, tiny_models):
    import torch

    from xlt.fp8 import convert_fp8_checkpoint, dequantize

    with pytest.raises(
        XltError, match=r"w: \(2, 2\) scale factors for a 40 x 32 weight in 16 x 16 blocks, expected \(3, 2\)"
    ):
        dequantize(torch.zeros(40, 32).to(torch.float8_e4m3fn), torch.ones(2, 2), (16, 16), torch.bfloat16, "w")
    with pytest.raises(
        XltError,
        match="no quantization_config in config.json, so not an FP8 checkpoint; set the model's dequantize_fp8: false",
    ):
        convert_fp8_checkpoint(tiny_models["tiny-dense"], tmp_path / "out")


def test_qlora_is_refused_for_fused_expert_models(tiny_models, tmp_path):
    """bitsandbytes leaves fused 3-D expert weights in bfloat16: QLoRA on a MoE model stops
    in one line, before anything is loaded."""
    from xlt.models import load_for_training

    base = tmp_path / "base"
    prepare_model(ModelSpec("tiny-moe", path=str(tiny_models["tiny-moe"])), base)
    with pytest.raises(
        XltError,
        match=r"^model tiny-moe: finetune.quantization '4bit' \(QLoRA\) cannot quantize the 4 fused expert weights",
    ):
        load_for_training(base, ModelSpec("tiny-moe", path=str(tiny_models["tiny-moe"])), quantization="4bit")


@pytest.mark.slow
def test_the_workflow_stages_a_hub_model_and_its_jobs_run_offline(repo, tiny_models, tmp_path, monkeypatch):
    """The test study with its dense model given as a Hub id and staging.dir set, run by
    Snakemake (a stand-in Hub on disk, tests/fake_hub): stage_model downloads it once,
    at its commit; prepare_model points at the staged folder; the fine-tuning and the
    predictions run from it with the hub offline, and nothing else downloads."""
    from snakemake_runs import tiny_config, write_config

    hub = tmp_path / "hub"
    shutil.copytree(tiny_models["tiny-dense"], hub / "org--tiny-dense")
    monkeypatch.setenv("XLT_FAKE_HUB", str(hub))
    monkeypatch.setenv("XLT_FAKE_HUB_COMMIT", COMMIT)
    monkeypatch.setenv("PYTHONPATH", str(REPO / "tests" / "fake_hub"))
    config = tiny_config(tiny_models)
    del config["models"]["tiny-dense"]["path"]
    config["models"]["tiny-dense"].update(id="org/tiny-dense", revision=COMMIT)
    config["staging"] = {"dir": str(tmp_path / "staging")}
    study = tmp_path / "study"
    configfile = write_config(config, study / "config.yaml")
    target = "results/predictions/tiny-dense/ft-arb_Arab/direct/arb_Arab.parquet"
    done = run_cli(study, configfile, "--cores", "2", "-p", target)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    downloads = [json.loads(line) for line in (hub / "downloads.jsonl").read_text().splitlines()]
    assert [(d["repo_id"], d["revision"], d["offline"]) for d in downloads] == [("org/tiny-dense", COMMIT, None)]
    staged = tmp_path / "staging" / "models" / "tiny-dense"
    assert json.loads((staged / STAGED_RECORD).read_text())["commit"] == COMMIT
    manifest = json.loads((study / "results" / "models" / "tiny-dense" / "base" / MANIFEST).read_text())
    assert manifest["kind"] == "staged" and manifest["path"] == str(staged)
    for rule in ("prepare_model", "finetune", "predict"):
        assert re.search(
            rf"rule {rule}:(.|\n)*?export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1", done.stdout + done.stderr
        ), rule
    assert (study / target).is_file()
