"""vLLM's engine arguments for every model of config/paper.yaml, built as the predict jobs
build them (xlt.inference.vllm.engine_args), without vllm installed: tensor parallel over
the job's GPUs, a context as long as the longest request (not the model's 131k-164k),
the recipe's LoRA rank reserved, raw log-probabilities, and DeepSeek-V3 served from its
FP8 weights."""

from __future__ import annotations

import json
import sys

import pytest

from xlt.config import load_config
from xlt.errors import XltError
from xlt.inference.requests import Encoded
from xlt.inference.vllm import LOGPROBS_MODE, engine_args, model_len
from xlt.models import MANIFEST, ModelSpec


def staged_base(tmp_path, name: str, fp8: bool):
    """A base folder as prepare_model writes it for a staged model (its bfloat16
    conversion for an FP8 one)."""
    base = tmp_path / name / "base"
    base.mkdir(parents=True)
    manifest = {
        "kind": "staged",
        "id": name,
        "revision": "0" * 40,
        "commit": "0" * 40,
        "path": f"/shared/staging/models/{name}",
    }
    if fp8:
        manifest = {**manifest, "path": f"/shared/staging/converted/{name}", "serve": f"/shared/staging/models/{name}"}
    (base / MANIFEST).write_text(json.dumps(manifest))
    return base


def test_engine_arguments_of_every_paper_model(repo, tmp_path):
    paper = load_config(repo / "config" / "paper.yaml")
    budget = paper["prompts"]["cot_max_new_tokens"]
    # the longest request: a 1900-token prompt, the chain-of-thought budget, the answer phrase and a two-token label
    longest = Encoded(list(range(1900)), "", [[1, 2], [3], [4], [5]], False, [7, 8, 9], budget)
    needed = model_len(
        [
            longest,
            Encoded(list(range(300)), "", [[1], [2], [3], [4]], True, None, paper["prompts"]["direct_max_new_tokens"]),
        ]
    )
    assert needed == 1900 + budget + 3 + 2
    gpus = {}
    for name, entry in paper["models"].items():
        assert entry["inference"]["backend"] == "vllm", name
        fp8 = entry.get("dequantize_fp8", False)
        base = staged_base(tmp_path, name, fp8)
        job_gpus = entry["inference"]["resources"]["gpu"]
        args = engine_args(
            ModelSpec.from_config(name, entry),
            str(base),
            entry["inference"],
            gpus=job_gpus,
            needed_len=needed,
            rank=entry["finetune"]["lora"]["r"],
        )
        gpus[name] = args["tensor_parallel_size"]
        assert args["tensor_parallel_size"] == job_gpus
        assert args["max_model_len"] == needed
        assert args["enable_lora"] and args["max_lora_rank"] == entry["finetune"]["lora"]["r"] == 8
        assert args["logprobs_mode"] == LOGPROBS_MODE == "raw_logprobs"
        assert args["enable_prefix_caching"] and args["load_format"] == "safetensors"
        # DeepSeek-V3 is served from the staged FP8 weights: 690 GB fit 8 H200 (1128 GB), its
        # 1.34 TB bfloat16 conversion would not
        assert args["model"] == f"/shared/staging/models/{name}" and args["revision"] is None
    assert gpus == {
        "qwen3-4b": 1,
        "llama-3.1-8b": 1,
        "qwen3-14b": 1,
        "qwen3-30b-a3b": 2,
        "llama-3.3-70b": 4,
        "qwen3-235b-a22b": 8,
        "deepseek-v3": 8,
    }
    assert "vllm" not in sys.modules


def test_engine_arguments_refuse_what_vllm_would_fail_on_later(repo, tmp_path):
    """A configured tensor_parallel_size that is not the job's GPUs, a max_model_len
    shorter than the longest request, a LoRA rank above vLLM's largest: one line each."""
    paper = load_config(repo / "config" / "paper.yaml")
    entry = paper["models"]["llama-3.3-70b"]
    spec, base = ModelSpec.from_config("llama-3.3-70b", entry), str(staged_base(tmp_path, "llama-3.3-70b", False))
    with pytest.raises(XltError, match=r"inference.tensor_parallel_size 2 is not the job's 4 GPU\(s\)"):
        engine_args(spec, base, {**entry["inference"], "tensor_parallel_size": 2}, gpus=4, needed_len=3000, rank=8)
    with pytest.raises(
        XltError, match=r"inference.max_model_len 2048 is shorter than the longest request \(3000 tokens"
    ):
        engine_args(spec, base, {**entry["inference"], "max_model_len": 2048}, gpus=4, needed_len=3000, rank=8)
    with pytest.raises(XltError, match="LoRA rank 1024 is above vLLM's largest, 512"):
        engine_args(spec, base, entry["inference"], gpus=4, needed_len=3000, rank=1024)
    assert (
        engine_args(spec, base, {**entry["inference"], "max_model_len": 4096}, gpus=4, needed_len=3000, rank=12)[
            "max_lora_rank"
        ]
        == 16
    )


def test_the_transformers_backend_serves_the_adapter_unmerged(prepared_tiny, study_config, tmp_path):
    """As vLLM and training do: the LoRA layers stay beside the base weights (merging
    would round base + delta into the weights' dtype), and the backend's model answers
    as base + adapter computed apart."""
    import torch
    from peft import PeftModel
    from test_finetune import TEMPLATE, arabic_items, settings

    from xlt.finetune import finetune
    from xlt.inference.loader import open_backend
    from xlt.models import load_model

    adapter = tmp_path / "adapter"
    spec = ModelSpec("tiny-dense")
    finetune(
        prepared_tiny["tiny-dense"], spec, arabic_items(4), TEMPLATE, settings(max_steps=2), adapter, tmp_path / "ckpt"
    )
    entry = json.loads(json.dumps(study_config["models"]["smollm2-135m"]))
    entry["inference"].update(backend="hf", dtype="float32")
    backend = open_backend("tiny-dense", entry, "ft", str(prepared_tiny["tiny-dense"]), str(adapter))
    assert isinstance(backend.model, PeftModel)
    assert any("lora_A" in name for name, _ in backend.model.named_parameters())
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        apart = PeftModel.from_pretrained(load_model(prepared_tiny["tiny-dense"], spec, dtype="float32"), str(adapter))(
            ids
        ).logits
        assert torch.equal(backend.model(ids).logits, apart)
