"""Block-scaled FP8 checkpoints (DeepSeek-V3 on the Hub) converted to bfloat16 once.

Each FP8 weight (float8_e4m3fn) is stored with `<name>_scale_inv`, one float32 factor
per block of `weight_block_size` (128 x 128) rows and columns, the last blocks cut at
the matrix's edge; the weight is the FP8 values times their block's factor (as
DeepSeek's fp8_cast_bf16.py and transformers' FineGrainedFP8 de-quantisation compute
it). The converted folder holds the same tensors in bfloat16, no scales, and a config
without `quantization_config`: transformers then sees plain weights and builds the
model under DeepSpeed's zero.Init, partitioned as it loads, where a quantized
checkpoint is built whole on every rank (modeling_utils.get_init_context).
One shard at a time, each written whole: a killed conversion resumes at the next shard
(of the same checkpoint only).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

from .errors import XltError

logger = logging.getLogger(__name__)

SCALE_SUFFIX = "_scale_inv"
INDEX = "model.safetensors.index.json"
CONVERTED_RECORD = "xlt_converted.json"
ORIGIN = ".origin.json"


def fp8_block_size(config: dict, where: str) -> tuple[int, int]:
    """The (rows, columns) of a scale block, from a checkpoint's config.json."""
    quantization = config.get("quantization_config")
    if not quantization:
        raise XltError(
            f"{where}: no quantization_config in config.json, so not an FP8 checkpoint; set the model's "
            "dequantize_fp8: false"
        )
    block = quantization.get("weight_block_size")
    if (
        quantization.get("quant_method") != "fp8"
        or quantization.get("fmt", "e4m3") != "e4m3"
        or not block
        or len(block) != 2
    ):
        raise XltError(
            f"{where}: quantization_config {json.dumps(quantization)} is not block-scaled FP8 "
            "(quant_method fp8, fmt e4m3, weight_block_size [rows, columns]); "
            "only that is converted"
        )
    return int(block[0]), int(block[1])


def dequantize(weight, scale_inv, block: tuple[int, int], dtype, name: str = "weight"):
    """`weight` (FP8, rows x columns) times its block factors, in `dtype`."""
    rows, columns = weight.shape
    expected = (math.ceil(rows / block[0]), math.ceil(columns / block[1]))
    if tuple(scale_inv.shape) != expected:
        raise XltError(
            f"{name}: {tuple(scale_inv.shape)} scale factors for a {rows} x {columns} weight in "
            f"{block[0]} x {block[1]} blocks, expected {expected}"
        )
    factors = (
        scale_inv.float().repeat_interleave(block[0], dim=0)[:rows].repeat_interleave(block[1], dim=1)[:, :columns]
    )
    return (weight.float() * factors).to(dtype)


def _shards(source: Path) -> dict[str, str]:
    """Tensor name -> the shard that holds it."""
    index = source / INDEX
    if index.is_file():
        return json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    from safetensors import safe_open

    single = source / "model.safetensors"
    if not single.is_file():
        raise XltError(f"{source}: neither {INDEX} nor model.safetensors; not a safetensors checkpoint")
    with safe_open(str(single), "pt") as handle:
        return dict.fromkeys(handle.keys(), single.name)


def _recorded_origin(marker: Path) -> dict | None:
    """The checkpoint a partial conversion was made from; None where the marker is absent
    or torn (a kill while it was written): then the partial folder is not trusted."""
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def convert_fp8_checkpoint(source: str | Path, out_dir: str | Path) -> dict:
    """Write `out_dir`: the checkpoint in `source` with every FP8 weight de-quantized to
    bfloat16, its scales dropped, and a config without quantization_config. Returns
    the record written beside it (CONVERTED_RECORD)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    source, out_dir = Path(source), Path(out_dir)
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    block = fp8_block_size(config, str(source))
    weight_map = _shards(source)
    # A killed conversion's shards are kept only for the very same checkpoint: the
    # folder, its weights' index and the block size, marked in the partial folder.
    origin = {
        "source": str(source.resolve()),
        "weights": hashlib.sha256(json.dumps(weight_map, sort_keys=True).encode()).hexdigest(),
        "block": list(block),
    }
    partial = out_dir.with_name(f".{out_dir.name}.partial")
    marker = partial / ORIGIN
    if partial.exists() and _recorded_origin(marker) != origin:
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(origin) + "\n", encoding="utf-8")
    handles: dict[str, Any] = {}  # safetensors' safe_open handles, which it does not type

    def tensor(name: str):
        shard = weight_map[name]
        if shard not in handles:
            handles[shard] = safe_open(str(source / shard), "pt")
        return handles[shard].get_tensor(name)

    converted_map, dequantized, total_size = {}, 0, 0
    by_shard: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        if not name.endswith(SCALE_SUFFIX):
            by_shard.setdefault(shard, []).append(name)
    for number, (shard, names) in enumerate(sorted(by_shard.items()), start=1):
        target = partial / shard
        tensors = {}
        for name in names:
            value = tensor(name)
            if value.dtype == torch.float8_e4m3fn:
                if name + SCALE_SUFFIX not in weight_map:
                    raise XltError(f"{source}: FP8 tensor {name} has no {name + SCALE_SUFFIX}; cannot de-quantize it")
                value = dequantize(value, tensor(name + SCALE_SUFFIX), block, torch.bfloat16, name)
                dequantized += 1
            tensors[name] = value
            converted_map[name] = shard
            total_size += value.numel() * value.element_size()
        if not target.is_file():
            written = target.with_name(target.name + ".tmp")
            save_file(tensors, str(written), metadata={"format": "pt"})
            os.replace(written, target)
        logger.info(f"[{number}/{len(by_shard)}] {shard}: {len(names)} tensors")
        handles.clear()
    if not dequantized:
        raise XltError(f"{source}: config.json says FP8 but no tensor is float8_e4m3fn; nothing to convert")
    index = {"metadata": {"total_size": total_size}, "weight_map": dict(sorted(converted_map.items()))}
    (partial / INDEX).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    del config["quantization_config"]
    config["dtype" if "dtype" in config else "torch_dtype"] = "bfloat16"
    (partial / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    weights = set(weight_map.values()) | {INDEX, "config.json"}
    for path in source.iterdir():
        if path.is_file() and path.name not in weights and not path.name.startswith(("xlt_", ".")):
            shutil.copy2(path, partial / path.name)
    staged = source / "xlt_staged.json"
    commit = json.loads(staged.read_text(encoding="utf-8"))["commit"] if staged.is_file() else None
    record = {
        "source": str(source.resolve()),
        "commit": commit,
        "block": list(block),
        "dtype": "bfloat16",
        "dequantized_tensors": dequantized,
        "bytes": total_size,
    }
    (partial / CONVERTED_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    marker.unlink()
    os.replace(partial, out_dir)
    logger.info(f"{dequantized} FP8 tensors de-quantized, {total_size / 1e9:.1f} GB of bfloat16 weights -> {out_dir}")
    return record
