"""The finetune stage on the tiny dense and Mixture-of-Experts models: what is
supervised, how batches are built, where LoRA attaches, that a killed job resumes to
the same adapter, and that the workflow launches each model by its configuration."""

from __future__ import annotations

import copy
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from belebele_rows import ENGLISH, items
from snakemake_runs import shipped_study, snakemake_command

from xlt.config import load_config, validate_config
from xlt.data import check_rows
from xlt.errors import XltError
from xlt.finetune import (
    IGNORE,
    AnswerOnlyCollator,
    FinetuneSettings,
    TokenCounts,
    attach_lora,
    build_example,
    build_examples,
    finetune,
    last_checkpoint,
    merge_adapter,
    seeded_length_grouped_sampler,
)
from xlt.inference.requests import uses_chat_template
from xlt.launch import MAIN_HOST, finetune_launch
from xlt.models import ModelSpec, load_model, load_tokenizer
from xlt.prompts import answer_completion, load_template

REPO = Path(__file__).resolve().parents[1]
MODELS = ["tiny-dense", "tiny-moe"]


def arabic_items(n: int | None = None) -> pd.DataFrame:
    """The shipped Arabic fixture: real passage lengths and a right-to-left script."""
    rows = [
        json.loads(line)
        for line in (REPO / "data" / "belebele_fixture" / "arb_Arab.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    frame = check_rows(pd.DataFrame(rows[:n]), "arb_Arab fixture")
    return frame.assign(lang="arb_Arab", split="train")


TEMPLATE = load_template(REPO / "config" / "templates" / "arb_Arab.yaml")


def settings(**overrides) -> FinetuneSettings:
    values = dict(
        r=4,
        alpha=8,
        dropout=0.0,
        target_modules="all-linear",
        learning_rate=0.01,
        lr_scheduler="constant",
        warmup_ratio=0.0,
        epochs=1,
        micro_batch_size=4,
        gradient_accumulation=1,
        max_length=1024,
        seed=0,
        dtype="float32",
    )
    values.update(overrides)
    return FinetuneSettings(**values)


def tokenizer_of(prepared_tiny, name):
    spec = ModelSpec(name)
    tokenizer = load_tokenizer(prepared_tiny[name], spec)
    return tokenizer, uses_chat_template(spec, tokenizer)


# --- what is supervised -----------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_training_batches_supervise_the_answer_alone(prepared_tiny, name):
    """Batches as the trainer builds them (length-grouped, left-padded, sliced to the
    kept logits): prompt and padding are masked, every example keeps its answer and
    end-of-sequence token supervised, with and without a chat template."""
    tokenizer, chat = tokenizer_of(prepared_tiny, name)
    frame = arabic_items(24)
    examples = build_examples(frame, TEMPLATE, tokenizer, chat, {}, max_length=1024)
    collate = AnswerOnlyCollator(tokenizer.pad_token_id)
    order = list(seeded_length_grouped_sampler([len(e["input_ids"]) for e in examples], batch_size=4, seed=0))
    assert sorted(order) == list(range(len(examples)))
    for start in range(0, len(order), 4):
        rows = [order[k] for k in range(start, min(start + 4, len(order)))]
        batch = collate([examples[i] for i in rows])
        kept = batch["labels"].shape[1]
        assert batch["logits_to_keep"] == kept
        for row, index in enumerate(rows):
            item = frame.iloc[index]
            labels = batch["labels"][row]
            supervised = labels[labels != IGNORE].tolist()
            assert supervised, f"item {item['item_id']}: no supervised token"
            assert (
                tokenizer.decode(supervised) == answer_completion(int(item["correct_answer_num"])) + tokenizer.eos_token
            )
            # the supervised tokens are the row's last tokens, and nothing before them is
            ids = batch["input_ids"][row]
            assert ids[-len(supervised) :].tolist() == supervised
            assert (labels[: kept - len(supervised)] == IGNORE).all()
            # everything outside the kept window (prompt, padding) carries no label at all
            n_real = int(batch["attention_mask"][row].sum())
            assert n_real == len(examples[index]["input_ids"])
            assert (batch["input_ids"][row, : len(ids) - n_real] == tokenizer.pad_token_id).all()


def test_an_example_whose_answer_was_masked_is_refused():
    """A chat template that masks everything would train on nothing; it stops the run."""
    with pytest.raises(XltError, match="no supervised token"):
        AnswerOnlyCollator(pad_id=0)([{"input_ids": [5, 6, 7], "labels": [IGNORE, IGNORE, IGNORE]}])


@pytest.mark.parametrize("name", MODELS)
def test_overlong_example_is_cut_from_the_passage_end(prepared_tiny, name):
    tokenizer, chat = tokenizer_of(prepared_tiny, name)
    item = arabic_items(1).iloc[0].to_dict()
    full = build_example(item, TEMPLATE, tokenizer, chat, {}, max_length=4096)
    short = build_example(item, TEMPLATE, tokenizer, chat, {}, max_length=len(full["input_ids"]) - 200)
    assert len(short["input_ids"]) <= len(full["input_ids"]) - 200
    text = tokenizer.decode(short["input_ids"])
    passage_start = item["flores_passage"][:40]
    assert passage_start in text and item["flores_passage"] not in text
    for kept in (item["question"], item["mc_answer1"], item["mc_answer4"], TEMPLATE.direct):
        assert kept in text
    assert short["labels"][-2:] == full["labels"][-2:] and short["labels"][-2] != IGNORE


@pytest.mark.parametrize("name", MODELS)
def test_padding_does_not_leak_between_examples(prepared_tiny, name):
    """Each row of a padded batch has the loss it has alone: no example attends to
    another's tokens or to padding (one example per row, attention mask and position
    ids from the collator)."""
    import torch

    tokenizer, chat = tokenizer_of(prepared_tiny, name)
    model = load_model(prepared_tiny[name], ModelSpec(name), dtype="float32")
    examples = build_examples(arabic_items(4), TEMPLATE, tokenizer, chat, {}, max_length=1024)
    assert len({len(e["input_ids"]) for e in examples}) > 1
    collate = AnswerOnlyCollator(tokenizer.pad_token_id)

    def loss_of(batch):
        logits = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
            logits_to_keep=batch["logits_to_keep"],
        ).logits
        labels = batch["labels"][:, 1:]
        per_token = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), labels, ignore_index=IGNORE, reduction="none"
        )
        return per_token.sum(-1) / (labels != IGNORE).sum(-1)

    with torch.no_grad():
        together = loss_of(collate(examples))
        alone = torch.cat([loss_of(collate([example])) for example in examples])
    assert torch.allclose(together, alone, rtol=1e-4, atol=1e-5)


def test_collator_left_pads_and_keeps_only_answer_logits():
    collator = AnswerOnlyCollator(pad_id=0)
    batch = collator(
        [
            {"input_ids": [5, 6, 7, 8, 9], "labels": [IGNORE, IGNORE, IGNORE, 8, 9]},
            {"input_ids": [5, 6, 9], "labels": [IGNORE, 6, 9]},
        ]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [0, 0, 5, 6, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4], [0, 0, 0, 1, 2]]
    assert batch["logits_to_keep"] == 3
    assert batch["labels"].tolist() == [[IGNORE, 8, 9], [IGNORE, 6, 9]]
    counts = TokenCounts()
    counts.add(batch)
    assert counts.take() == {"tokens": 8, "supervised_tokens": 4, "padding_share": pytest.approx(2 / 10)}


@pytest.mark.parametrize("name", MODELS)
def test_logits_to_keep_gives_the_same_loss_as_full_logits(prepared_tiny, name):
    import torch

    spec = ModelSpec(name)
    tokenizer = load_tokenizer(prepared_tiny[name], spec)
    model = load_model(prepared_tiny[name], spec, dtype="float32")
    chat = uses_chat_template(spec, tokenizer)
    examples = [build_example(item, ENGLISH, tokenizer, chat, {}, 512) for item in items(3).to_dict("records")]
    batch = AnswerOnlyCollator(tokenizer.pad_token_id)(examples)
    with torch.no_grad():
        short = model(**batch).loss
        full_labels = torch.full_like(batch["input_ids"], IGNORE)
        full_labels[:, -batch["labels"].shape[1] :] = batch["labels"]
        full = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
            labels=full_labels,
        ).loss
    assert torch.isfinite(short)
    assert short.item() == pytest.approx(full.item(), rel=1e-5)


# --- where LoRA attaches ----------------------------------------------------------


@pytest.mark.parametrize(
    "name, targets, experts, modules, parameters",
    [
        (
            "tiny-dense",
            "all-linear",
            False,
            {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
            set(),
        ),
        ("tiny-dense", "attention", False, {"q_proj", "k_proj", "v_proj", "o_proj"}, set()),
        ("tiny-dense", ["q_proj", "mlp.up_proj"], False, {"q_proj", "up_proj"}, set()),
        # peft alone would put all-linear on the fused experts and the router of Qwen3-MoE
        ("tiny-moe", "all-linear", False, {"q_proj", "k_proj", "v_proj", "o_proj"}, set()),
        ("tiny-moe", "attention", False, {"q_proj", "k_proj", "v_proj", "o_proj"}, set()),
        ("tiny-moe", "attention", True, {"q_proj", "k_proj", "v_proj", "o_proj"}, {"gate_up_proj", "down_proj"}),
        ("tiny-moe", ["v_proj"], True, {"v_proj"}, {"gate_up_proj", "down_proj"}),
    ],
)
def test_lora_attaches_where_configured(prepared_tiny, name, targets, experts, modules, parameters):
    model = load_model(prepared_tiny[name], ModelSpec(name), dtype="float32")
    n_layers = model.config.num_hidden_layers
    peft_model = attach_lora(model, settings(target_modules=targets, experts=experts), name)
    adapted = peft_model.base_model.targeted_module_names
    adapted_parameters = peft_model.base_model.targeted_parameter_names
    assert {module.rsplit(".", 1)[-1] for module in adapted} == modules
    assert len(adapted) == n_layers * len(modules)
    assert {param.rsplit(".", 1)[-1] for param in adapted_parameters} == parameters
    assert all(".mlp.experts." in param for param in adapted_parameters) and len(adapted_parameters) == n_layers * len(
        parameters
    )
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("experts" in n for n in trainable) == experts
    assert not any(".gate." in n or n.endswith(".gate") for n in trainable)  # the router stays frozen


def test_experts_on_a_dense_model_or_with_dropout_are_refused(prepared_tiny):
    dense = load_model(prepared_tiny["tiny-dense"], ModelSpec("tiny-dense"), dtype="float32")
    with pytest.raises(XltError, match="model tiny-dense: lora.experts is true but the model has no expert layers"):
        attach_lora(dense, settings(experts=True), "tiny-dense")
    moe = load_model(prepared_tiny["tiny-moe"], ModelSpec("tiny-moe"), dtype="float32")
    with pytest.raises(XltError, match="lora.experts needs lora.dropout 0"):
        attach_lora(moe, settings(experts=True, dropout=0.1), "tiny-moe")


def test_names_that_peft_remaps_onto_the_experts_are_caught(prepared_tiny):
    """On Qwen3-MoE, peft reads a listed `gate` as the v4 router and re-targets it; the
    run stops instead of training layers nobody asked for."""
    moe = load_model(prepared_tiny["tiny-moe"], ModelSpec("tiny-moe"), dtype="float32")
    with pytest.raises(XltError, match="peft adapted .* the config did not ask for"):
        attach_lora(moe, settings(target_modules=["q_proj", "mlp.gate"]), "tiny-moe")


@pytest.mark.parametrize("name, experts", [("tiny-dense", False), ("tiny-moe", False), ("tiny-moe", True)])
def test_loss_falls_on_a_fixed_batch(prepared_tiny, name, experts, tmp_path):
    """Four examples, one batch, twelve steps: the loss falls, the adapter and its log
    are written and the checkpoints are gone."""
    adapter = tmp_path / "adapter"
    run = settings(experts=experts, max_steps=12, target_modules="attention" if experts else "all-linear")
    finetune(
        prepared_tiny[name], ModelSpec(name), arabic_items(4), TEMPLATE, run, adapter, tmp_path / "ckpt", save_steps=5
    )
    log = pd.read_csv(adapter / "train_log.csv")
    assert {"loss", "learning_rate", "tokens", "padding_share", "supervised_tokens"} <= set(log.columns)
    assert len(log) == 12 and log["step"].tolist() == list(range(1, 13))
    assert log["loss"].iloc[-3:].mean() < log["loss"].iloc[:3].mean() - 0.2
    assert (log["supervised_tokens"] == 4 * 3).all()  # a space, the letter, end of sequence
    assert ((log["padding_share"] > 0) & (log["padding_share"] < 1)).all()
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert bool(config.get("target_parameters")) == experts
    trained_experts = {key: value for key, value in adapter_tensors(adapter).items() if ".experts." in key}
    assert bool(trained_experts) == experts
    assert all(value.abs().sum() > 0 for key, value in trained_experts.items() if "lora_B" in key)  # B starts at zero
    assert not (tmp_path / "ckpt").exists()


def test_qlora_is_refused_without_a_gpu(prepared_tiny, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(XltError, match="'4bit' \\(QLoRA\\) needs a CUDA GPU"):
        finetune(
            prepared_tiny["tiny-dense"],
            ModelSpec("tiny-dense"),
            arabic_items(4),
            TEMPLATE,
            settings(quantization="4bit"),
            tmp_path / "a",
            tmp_path / "c",
        )


def test_fp8_checkpoints_are_dequantized_for_training(tiny_models, tmp_path):
    """DeepSeek-V3's Hub weights are FP8 blocks; training loads them as bfloat16."""
    from xlt.models import _quantization_config

    folder = tmp_path / "fp8"
    folder.mkdir()
    config = json.loads((tiny_models["tiny-moe"] / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "fp8",
        "activation_scheme": "dynamic",
        "weight_block_size": [128, 128],
    }
    (folder / "config.json").write_text(json.dumps(config))
    chosen = _quantization_config(str(folder), None, ModelSpec("fp8"), "none", None)
    assert type(chosen).__name__ == "FineGrainedFP8Config" and chosen.dequantize
    assert _quantization_config(str(tiny_models["tiny-moe"]), None, ModelSpec("plain"), "none", None) is None


@pytest.mark.parametrize("name, experts", [("tiny-dense", False), ("tiny-moe", True)])
def test_merged_weights_answer_as_base_plus_adapter(prepared_tiny, name, experts, tmp_path):
    import torch
    from peft import PeftModel

    spec = ModelSpec(name)
    adapter = tmp_path / "adapter"
    run = settings(max_steps=3, experts=experts, target_modules="attention" if experts else "all-linear")
    finetune(prepared_tiny[name], spec, arabic_items(4), TEMPLATE, run, adapter, tmp_path / "ckpt")
    merged = tmp_path / "merged"
    merge_adapter(prepared_tiny[name], spec, adapter, merged, dtype="float32")
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        unmerged = PeftModel.from_pretrained(load_model(prepared_tiny[name], spec, dtype="float32"), str(adapter))(
            ids
        ).logits
        plain = load_model(merged, spec, dtype="float32")(ids).logits
        base = load_model(prepared_tiny[name], spec, dtype="float32")(ids).logits
    assert torch.allclose(plain, unmerged, atol=1e-5)
    assert not torch.allclose(plain, base, atol=1e-4)


# --- a killed job resumes ---------------------------------------------------------


def finetune_job(base: Path, data: Path, out: Path, checkpoints: Path, entry: dict, log: Path) -> subprocess.Popen:
    """`python -m xlt finetune`, as the workflow's shell rule starts it, in its own
    process group."""
    command = [
        sys.executable,
        "-m",
        "xlt",
        "finetune",
        "--model",
        "tiny-dense",
        "--settings",
        json.dumps(entry),
        "--base",
        str(base),
        "--data",
        str(data),
        "--template",
        str(REPO / "config" / "templates" / "arb_Arab.yaml"),
        "--out",
        str(out),
        "--checkpoints",
        str(checkpoints),
        "--threads",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(command, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def steps_saved(checkpoints: Path) -> int:
    last = last_checkpoint(checkpoints) if checkpoints.is_dir() else None
    return int(last.name.rsplit("-", 1)[1]) if last is not None else 0


def adapter_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


@pytest.mark.slow
def test_killed_job_resumes_to_the_same_adapter(prepared_tiny, tmp_path):
    """SIGKILL to the job's whole process group once a checkpoint exists, then a rerun:
    it resumes from that checkpoint (not from step 0) and ends with the adapter of a run
    that was never stopped."""
    import torch

    data = tmp_path / "arb_Arab.parquet"
    arabic_items(24).to_parquet(data)
    raw = {
        "path": "unused",
        "finetune": {
            "lora": {"r": 4, "alpha": 8, "dropout": 0.1},
            "learning_rate": 0.005,
            "epochs": 3,
            "micro_batch_size": 2,
            "gradient_accumulation": 2,
            "max_length": 1024,
            "save_steps": 2,
            "dtype": "float32",
            "lr_scheduler": "cosine",
            "warmup_ratio": 0.1,
        },
    }
    entry = validate_config(
        {
            "data": {},
            "languages": {
                "arb_Arab": {"family": "S", "script": "Arab"},
                "heb_Hebr": {"family": "S", "script": "Hebr"},
                "eng_Latn": {"family": "I", "script": "Latn"},
            },
            "source_language": "arb_Arab",
            "related_families": ["S"],
            "models": {"tiny-dense": raw},
        }
    )["models"]["tiny-dense"]
    base = prepared_tiny["tiny-dense"]

    reference = tmp_path / "reference"
    assert (
        finetune_job(base, data, reference, tmp_path / "ckpt-reference", entry, tmp_path / "reference.log").wait(
            timeout=600
        )
        == 0
    )

    out, checkpoints = tmp_path / "adapter", tmp_path / "ckpt"
    job = finetune_job(base, data, out, checkpoints, entry, tmp_path / "first.log")
    deadline = time.monotonic() + 600
    # 6 optimizer steps an epoch: a checkpoint at step 8 or later is resumed in the
    # middle of the second epoch, whose order must be drawn again the same way
    while job.poll() is None and time.monotonic() < deadline and steps_saved(checkpoints) < 8:
        time.sleep(0.02)
    assert job.poll() is None, "the job ended before a checkpoint could be killed"
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    killed_at = last_checkpoint(checkpoints)
    assert steps_saved(checkpoints) < 18 and not out.exists()

    assert finetune_job(base, data, out, checkpoints, entry, tmp_path / "second.log").wait(timeout=600) == 0
    second_log = (tmp_path / "second.log").read_text()
    assert "resuming from" in second_log and killed_at.name in second_log
    resumed, expected = adapter_tensors(out), adapter_tensors(reference)
    assert resumed.keys() == expected.keys()
    for key in expected:
        assert torch.allclose(resumed[key], expected[key], rtol=1e-4, atol=1e-6), key
    log, expected_log = pd.read_csv(out / "train_log.csv"), pd.read_csv(reference / "train_log.csv")
    assert list(log.columns) == list(expected_log.columns) and log["step"].tolist() == expected_log["step"].tolist()
    assert not checkpoints.exists()


def test_checkpoints_cut_short_or_of_another_run_are_not_resumed(tmp_path):
    from xlt.finetune import prepare_checkpoints

    folder = tmp_path / "ckpt"
    prepare_checkpoints(folder, "run-a")
    for step, complete in ((2, True), (4, True), (6, False)):
        (folder / f"checkpoint-{step}").mkdir()
        if complete:
            (folder / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    prepare_checkpoints(folder, "run-a")
    assert last_checkpoint(folder).name == "checkpoint-4" and not (folder / "checkpoint-6").exists()
    prepare_checkpoints(folder, "run-b")
    assert last_checkpoint(folder) is None


# --- launching by configuration ---------------------------------------------------


def paper_launches(folder: Path) -> dict[str, str]:
    """The finetune command `snakemake -n -p --configfile config/paper.yaml` prints for
    each model, planned in `folder` (never in the checkout)."""
    study = shipped_study(folder)
    printed = snakemake_command(REPO / "Snakefile", study, study / "config" / "paper.yaml", "-n", "-p", "--cores", "64")
    commands = [
        line.split("Shell command: ", 1)[1]
        for line in printed.splitlines()
        if "Shell command: " in line and " finetune " in line
    ]
    return {shlex.split(command)[shlex.split(command).index("--model") + 1]: command for command in commands}


@pytest.mark.plans
def test_paper_config_prints_each_models_launch_command(repo, tmp_path):
    launches = paper_launches(tmp_path)
    paper = load_config(repo / "config" / "paper.yaml")
    assert set(launches) == set(paper["models"])
    for model, command in launches.items():
        entry = paper["models"][model]
        launcher = entry["finetune"]["launcher"]
        words = shlex.split(command)
        assert words.count("finetune") == 1
        settings_json = json.loads(words[words.index("--settings") + 1])
        assert settings_json["finetune"]["lora"] == entry["finetune"]["lora"]
        assert settings_json["finetune"]["learning_rate"] == entry["finetune"]["learning_rate"]
        assert "resources" not in settings_json["finetune"] and "launcher" not in settings_json["finetune"]
        if launcher["type"] == "in_process":
            assert "-m xlt finetune" in command and "accelerate" not in command
        else:
            launch = words.index("launch")
            assert words[launch - 1].endswith("accelerate")
            assert words[words.index("--config_file") + 1] == launcher["config_file"]
            assert int(words[words.index("--num_processes") + 1]) == entry["finetune"]["resources"]["gpu"]
            assert ("srun" in words) == (launcher["num_machines"] > 1)
    assert "--num_machines 2" in launches["deepseek-v3"] and "deepspeed_zero3" in launches["deepseek-v3"]
    assert "fsdp" in launches["llama-3.3-70b"]


@pytest.mark.parametrize("machines, gpus", [(1, 1), (1, 8), (4, 32)])
def test_launch_words_survive_hostile_paths(machines, gpus):
    """Configured paths with spaces, quotes and shell syntax stay single words."""
    hostile = "cfg dir/it's; rm -rf $HOME `x`.yaml"
    launcher = {"type": "accelerate", "config_file": hostile, "num_machines": machines, "main_process_port": 29500}
    command = finetune_launch(launcher, gpus, 8, "/src with space/$PATH", "/venv bin/python")
    assert command.startswith(MAIN_HOST) == (machines > 1)
    words = shlex.split(command.removeprefix(f"{MAIN_HOST}; "))
    assert words[0] == "PYTHONPATH=/src with space/$PATH${PYTHONPATH:+:$PYTHONPATH}"
    assert words[words.index("--config_file") + 1] == hostile
    assert "/venv bin/accelerate" in words and words[-2:] == ["-m", "xlt"]
    in_process = shlex.split(
        finetune_launch(
            {"type": "in_process", "config_file": None, "num_machines": 1, "main_process_port": 29500},
            0,
            1,
            "/s",
            "/venv bin/python",
        )
    )
    assert in_process[1:] == ["/venv bin/python", "-m", "xlt"]


@pytest.mark.parametrize(
    "finetune_block, message",
    [
        (
            {"launcher": {"type": "accelerate"}, "resources": {"gpu": 2}},
            "launcher.config_file: required by launcher type 'accelerate'",
        ),
        (
            {"launcher": {"type": "accelerate", "config_file": "c.yaml"}},
            "resources.gpu: launcher type 'accelerate' starts one process per GPU",
        ),
        (
            {"launcher": {"type": "accelerate", "config_file": "c.yaml", "num_machines": 4}, "resources": {"gpu": 6}},
            "gpu must be a positive multiple of num_machines, not 6",
        ),
        ({"launcher": {"num_machines": 2}}, "launcher.num_machines: 2 nodes need launcher type 'accelerate'"),
        ({"launcher": {"config_file": "c.yaml"}}, "launcher.config_file: only read by launcher type 'accelerate'"),
        ({"quantization": "8bit"}, "models.smollm2-135m.finetune.quantization: '8bit' is not one of"),
        ({"lora": {"target_modules": "mlp"}}, "models.smollm2-135m.finetune.lora.target_modules: 'mlp' is not allowed"),
    ],
)
def test_launcher_mistakes_stop_with_one_line(repo, finetune_block, message):
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    config["models"]["smollm2-135m"]["finetune"] = copy.deepcopy(finetune_block)
    with pytest.raises(XltError) as error:
        validate_config(config)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_zero3_checkpoints_save_the_adapter_only(repo):
    """config/accelerate/deepspeed_zero3.yaml never gathers the whole model to save it
    (zero3_save_16bit_model: false, as accelerate turns it into DeepSpeed's setting), and
    the installed Trainer saves a peft model under ZeRO-3 without its frozen weights, in
    its checkpoints and in the final save."""
    import inspect

    from accelerate.utils import DeepSpeedPlugin
    from transformers import Trainer

    settings = yaml.safe_load((repo / "config" / "accelerate" / "deepspeed_zero3.yaml").read_text())["deepspeed_config"]
    assert settings["zero_stage"] == 3
    plugin = DeepSpeedPlugin(
        zero_stage=3, zero3_save_16bit_model=settings["zero3_save_16bit_model"], zero3_init_flag=False
    )
    assert plugin.deepspeed_config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is False
    assert "save_checkpoint(output_dir, exclude_frozen_parameters=True)" in inspect.getsource(
        Trainer._save_optimizer_and_scheduler
    )
    assert "_zero3_consolidated_16bit_state_dict(exclude_frozen_parameters=True)" in inspect.getsource(
        Trainer.save_model
    )
