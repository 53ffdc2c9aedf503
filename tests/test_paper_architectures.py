"""One tiny random-initialised model per architecture of config/paper.yaml (Llama, Qwen3,
Qwen3-MoE, DeepSeek-V3), with the paper's recipe and target-module setting (LoRA r=8 on
the attention projections, experts frozen), through the stages the workflow runs:
prepare_model, finetune and predict, on the CPU. DeepSeek-V3 starts as the Hub stores
it, a block-scaled FP8 checkpoint (written here), converted to bfloat16 first and
checked against a reference de-quantisation. Minutes in all: the slow suite."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
from test_finetune import arabic_items
from test_staging import reference_dequantisation, write_fp8_checkpoint

from xlt import stages
from xlt.config import load_config
from xlt.paths import JOB_CELLS
from xlt.settings import AdapterSettings, PredictSettings, PrepareModelSettings

# tiny-model kind (tests/tiny_models.py) of each paper architecture
ARCHITECTURES = {"llama": "dense", "qwen3": "qwen3", "qwen3-moe": "moe", "deepseek-v3": "deepseek-v3"}
# the modules the paper's `target_modules: attention` adapts, per architecture
ATTENTION = {
    "llama": {"q_proj", "k_proj", "v_proj", "o_proj"},
    "qwen3": {"q_proj", "k_proj", "v_proj", "o_proj"},
    "qwen3-moe": {"q_proj", "k_proj", "v_proj", "o_proj"},
    "deepseek-v3": {"q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"},
}


def paper_entry(repo, folder) -> dict:
    """The paper's DeepSeek-V3 entry (the recipe every model shares), on a local tiny
    checkpoint, small enough for a CPU: two optimizer steps, short budgets, float32."""
    entry = copy.deepcopy(load_config(repo / "config" / "paper.yaml")["models"]["deepseek-v3"])
    for key in ("id", "revision", "dequantize_fp8"):
        entry.pop(key)
    entry.update(path=str(folder), chat_template_kwargs={})
    assert entry["finetune"]["lora"] == {
        "r": 8,
        "alpha": 16,
        "dropout": 0.0,
        "target_modules": "attention",
        "experts": False,
    }
    entry["finetune"].update(
        max_steps=2,
        micro_batch_size=2,
        gradient_accumulation=1,
        gradient_checkpointing=False,
        dtype="float32",
        max_length=1024,
    )
    entry["inference"].update(backend="hf", batch_size=4, dtype="float32")
    return entry


@pytest.mark.slow
@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_a_paper_architecture_prepares_finetunes_and_predicts(repo, tmp_path, architecture):
    import torch
    from safetensors import safe_open
    from tiny_models import build_tiny_model

    from xlt.fp8 import convert_fp8_checkpoint

    if architecture == "deepseek-v3":
        block = (16, 16)
        fp8, quantized = write_fp8_checkpoint(tmp_path / "fp8", block)
        folder = tmp_path / "converted"
        convert_fp8_checkpoint(fp8, folder)
        index = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
        for name, (weight, scales) in quantized.items():
            with safe_open(str(folder / index[name]), "pt") as handle:
                assert torch.equal(handle.get_tensor(name), reference_dequantisation(weight, scales, block)), name
    else:
        folder = build_tiny_model(tmp_path / "model", ARCHITECTURES[architecture], chat=True)
    entry = paper_entry(repo, folder)
    base, adapter = tmp_path / "base", tmp_path / "adapter"
    source = {key: entry.get(key) for key in ("id", "revision", "path", "package", "trust_remote_code")}
    stages.prepare_model(name=architecture, settings=PrepareModelSettings(**source), output=str(base), threads=1)

    train = tmp_path / "train.parquet"
    arabic_items(8).to_parquet(train)
    template = str(repo / "config" / "templates" / "arb_Arab.yaml")
    adapter_settings = AdapterSettings(
        source={key: value for key, value in entry.items() if key not in ("finetune", "inference")},
        finetune=entry["finetune"],
    )
    stages.finetune(
        name=architecture,
        settings=adapter_settings,
        base_dir=str(base),
        source_data=str(train),
        template_file=template,
        adapter_dir=str(adapter),
        checkpoint_dir=str(tmp_path / "checkpoints"),
        threads=1,
    )
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert (
        config["r"] == 8 and {name.rsplit(".", 1)[-1] for name in config["target_modules"]} == ATTENTION[architecture]
    )
    assert not any("expert" in name for name in config["target_modules"]) and not config.get("target_parameters")

    test = tmp_path / "test.parquet"
    arabic_items(3).assign(split="test").to_parquet(test)
    prompts = {
        "direct": {"max_new_tokens": 4, "scoring": "generate"},
        "cot": {"max_new_tokens": 8, "scoring": "generate"},
    }
    outputs = [
        str(tmp_path / "predictions" / cell / "arb_Arab.parquet") for prompt in prompts for cell in JOB_CELLS[prompt]
    ]
    model = {key: value for key, value in entry.items() if key != "finetune"}
    predict_settings = PredictSettings(model=model, templates={"arb_Arab": template}, prompts=prompts)
    stages.predict(
        name=architecture,
        settings=predict_settings,
        variant="ft",
        base_dir=str(base),
        adapter_dir=str(adapter),
        data_files=[str(test)],
        outputs=outputs,
        threads=1,
    )
    for path in outputs:
        frame = pd.read_parquet(path)
        assert len(frame) == 3 and (frame["variant"] == "ft").all() and (frame["n_prompt_tokens"] > 0).all()
