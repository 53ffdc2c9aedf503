"""Every mistake a user can make in a config stops before any job with one line naming
the key and what is allowed: the same line from `xlt.config` and from the real
`snakemake` command line, which then has run nothing."""

from __future__ import annotations

import copy

import pytest
from faultlib import REPO, files_under
from snakemake_runs import run_cli, tiny_config, write_config

from xlt.config import check_files, validate_config
from xlt.errors import XltError

TEMPLATES = REPO / "config" / "templates"
FIXTURE = REPO / "data" / "belebele_fixture"
TEMPLATE_NAMES = "amh_Ethi, arb_Arab, eng_Latn, heb_Hebr, mlt_Latn, pes_Arab, tur_Latn, urd_Arab"
FINETUNE_KEYS = (
    "lora, learning_rate, lr_scheduler, warmup_ratio, epochs, max_steps, micro_batch_size, "
    "gradient_accumulation, max_length, seed, save_steps, dtype, quantization, gradient_checkpointing, merge, "
    "launcher, resources"
)
MODEL_NAME_RULE = (
    "a model name is a folder name and a wildcard: letters, digits, '.', '_', '-', starting with a letter or digit"
)


def _dense(config):
    return config["models"]["tiny-dense"]


def _rename_model(config, name):
    config["models"] = {name: config["models"]["tiny-dense"]}


def _use_hub_id(config, hub_id):
    del _dense(config)["path"]
    _dense(config)["id"] = hub_id


# (mutation of a valid config, the message after "<config file>: ")
CASES = {
    "unknown top-level key": (
        lambda c: c.update(modles={}),
        "modles: unknown key; allowed here: data, languages, source_language, source_languages, finetune, "
        "related_families, prompts, models, stats, staging, resources",
    ),
    "unknown nested key": (
        lambda c: _dense(c)["finetune"].update(epoch=3),
        f"models.tiny-dense.finetune.epoch: unknown key; allowed here: {FINETUNE_KEYS}",
    ),
    "text where a number goes": (
        lambda c: _dense(c)["finetune"].update(epochs="two"),
        "models.tiny-dense.finetune.epochs: 'two' is not of type 'number'",
    ),
    "text where a list goes": (
        lambda c: c.update(related_families="Semitic"),
        "related_families: 'Semitic' is not of type 'array'",
    ),
    "text where a boolean goes": (
        lambda c: _dense(c).update(trust_remote_code="yes"),
        "models.tiny-dense.trust_remote_code: 'yes' is not of type 'boolean'",
    ),
    "language name instead of a FLORES code": (
        lambda c: c["languages"].update(arabic={"family": "Semitic", "script": "Arab"}),
        "languages: 'arabic' is not allowed: a FLORES-200 code, language_Script, e.g. arb_Arab, heb_Hebr, eng_Latn",
    ),
    "language outside Belebele without its family": (
        lambda c: c["languages"].update(xyz_Latn={"script": "Latn"}),
        "languages.xyz_Latn: no family, and xyz_Latn is not a Belebele variant whose metadata xlt ships; give both",
    ),
    "a single language": (
        lambda c: c.update(languages={"arb_Arab": {"family": "Semitic", "script": "Arab"}}),
        "languages: needs at least 2 entries, found 1",
    ),
    "related family with no language": (
        lambda c: c.update(related_families=["Bantu"]),
        "related_families: no language of family 'Bantu'; families configured: Indo-European, Semitic",
    ),
    "no control language": (
        lambda c: c.update(related_families=["Semitic", "Indo-European"]),
        "languages: no control language (every language is in related_families or a source)",
    ),
    "source language missing from the languages": (
        lambda c: c.update(source_language="amh_Ethi"),
        "source_language: 'amh_Ethi' is not among languages (arb_Arab, heb_Hebr, eng_Latn)",
    ),
    "model with neither path nor id": (
        lambda c: _dense(c).pop("path"),
        "models.tiny-dense: give exactly one of id, path, package (found none)",
    ),
    "model with both path and id": (
        lambda c: _dense(c).update(id="Qwen/Qwen3-4B"),
        "models.tiny-dense: give exactly one of id, path, package (found id, path)",
    ),
    "negative inference batch size": (
        lambda c: _dense(c).update(inference={"batch_size": -1}),
        "models.tiny-dense.inference.batch_size: -1 is not allowed: -1 is less than the minimum of 1; or "
        "-1 is not one of ['auto']",
    ),
    "negative training batch size": (
        lambda c: _dense(c)["finetune"].update(micro_batch_size=-4),
        "models.tiny-dense.finetune.micro_batch_size: -4 is less than the minimum of 1",
    ),
    "unknown inference backend": (
        lambda c: _dense(c).update(inference={"backend": "tensorrt"}),
        "models.tiny-dense.inference.backend: 'tensorrt' is not one of ['hf', 'vllm']",
    ),
    "test fraction above 1": (
        lambda c: c["data"].update(test_fraction=1.5),
        "data.test_fraction: 1.5 is greater than or equal to the maximum of 1",
    ),
    "model name that injects shell": (
        lambda c: _rename_model(c, "x;touch pwned"),
        f"models: 'x;touch pwned' is not allowed: {MODEL_NAME_RULE}",
    ),
    "model name that climbs out of results": (
        lambda c: _rename_model(c, "../escape"),
        f"models: '../escape' is not allowed: {MODEL_NAME_RULE}",
    ),
    "hub id that injects shell": (
        lambda c: _use_hub_id(c, "Qwen/Qwen3-4B $(touch pwned)"),
        "models.tiny-dense.id: 'Qwen/Qwen3-4B $(touch pwned)' is not allowed: a Hub id, owner/name "
        "(letters, digits, '.', '_', '-'), e.g. Qwen/Qwen3-4B",
    ),
    "language with no prompt template": (
        lambda c: c["languages"].update(xho_Latn={"family": "Bantu", "script": "Latn"}),
        f"languages.xho_Latn: no prompt template {TEMPLATES}/xho_Latn.yaml; write one, or set template: "
        f"to one of {TEMPLATE_NAMES}",
    ),
    "template that does not exist": (
        lambda c: c["languages"]["heb_Hebr"].update(template="hebrew"),
        f"languages.heb_Hebr: no prompt template {TEMPLATES}/hebrew.yaml; write one, or set template: to "
        f"one of {TEMPLATE_NAMES}",
    ),
    "language with no fixture file": (
        lambda c: c["languages"].update(xho_Latn={"family": "Bantu", "script": "Latn", "template": "eng_Latn"}),
        f"data.fixture_dir: {FIXTURE} has no xho_Latn.jsonl for languages.xho_Latn",
    ),
    "integral float where an integer goes": (
        lambda c: c["stats"].update(bootstrap_samples=2000.0),
        "stats.bootstrap_samples: 2000.0 is not of type 'integer'",
    ),
    "integral float seed": (
        lambda c: c["data"].update(seed=1234.0),
        "data.seed: 1234.0 is not of type 'integer'",
    ),
    "NaN within bounds": (
        lambda c: c["data"].update(test_fraction=float("nan")),
        "data.test_fraction: nan is not allowed: a finite number",
    ),
    "bootstrap samples beyond reason": (
        lambda c: c["stats"].update(bootstrap_samples=10**12),
        "stats.bootstrap_samples: 1000000000000 is greater than the maximum of 1000000",
    ),
    "chain-of-thought budget beyond reason": (
        lambda c: c["prompts"].update(cot_max_new_tokens=10**15),
        "prompts.cot_max_new_tokens: 1000000000000000 is greater than the maximum of 32768",
    ),
    "negative seed": (
        lambda c: c["stats"].update(seed=-1),
        "stats.seed: -1 is less than the minimum of 0",
    ),
    "script in lower case": (
        lambda c: c["languages"]["arb_Arab"].update(script="arab"),
        "languages.arb_Arab.script: 'arab' is not allowed: an ISO 15924 script code in its canonical "
        "case, the script part of the language's code (Arab, not arab)",
    ),
    "script of another code": (
        lambda c: c["languages"]["arb_Arab"].update(script="Hebr"),
        "languages.arb_Arab.script: 'Hebr' is not the script of the code arb_Arab (Arab)",
    ),
    "model name ending in a line break": (
        lambda c: _rename_model(c, "tiny-dense\n"),
        f"models: 'tiny-dense\\n' is not allowed: {MODEL_NAME_RULE}",
    ),
    "language code ending in a line break": (
        lambda c: c["languages"].update({"eng_Latn\n": c["languages"].pop("eng_Latn")}),
        "languages: 'eng_Latn\\n' is not allowed: a FLORES-200 code, language_Script, e.g. arb_Arab, "
        "heb_Hebr, eng_Latn",
    ),
    "hub id ending in a line break": (
        lambda c: _use_hub_id(c, "Qwen/Qwen3-4B\n"),
        "models.tiny-dense.id: 'Qwen/Qwen3-4B\\n' is not allowed: a Hub id, owner/name (letters, digits, "
        "'.', '_', '-'), e.g. Qwen/Qwen3-4B",
    ),
    "template outside the templates folder": (
        lambda c: c["languages"]["heb_Hebr"].update(template="../../etc/passwd"),
        "languages.heb_Hebr.template: '../../etc/passwd' is not allowed: prompt template to use (a "
        "language code under prompts.templates: letters, digits, '.', '_', '-'); default: the language's "
        "own",
    ),
    "empty module name to adapt": (
        lambda c: _dense(c)["finetune"].update(lora={"target_modules": [""]}),
        "models.tiny-dense.finetune.lora.target_modules: [''] is not allowed: '' should be non-empty; or "
        "[''] is not of type 'string'; or [''] is not one of ['all-linear', 'attention']",
    ),
    "optimizer steps beyond reason": (
        lambda c: _dense(c)["finetune"].update(max_steps=10**30),
        f"models.tiny-dense.finetune.max_steps: {10**30} is greater than the maximum of 1000000000",
    ),
    "model path that does not exist": (
        lambda c: _dense(c).update(path="/nonexistent/tiny dense"),
        "models.tiny-dense.path: /nonexistent/tiny dense does not exist (a checkpoint folder or a .gguf file)",
    ),
}


@pytest.fixture
def valid_config(tmp_path):
    """The test config; its models are empty folders: nothing here gets as far as loading one."""
    models = {name: tmp_path / "models" / name for name in ("tiny-dense", "tiny-moe")}
    for folder in models.values():
        folder.mkdir(parents=True)
    return tiny_config(models)


def test_the_valid_config_passes(valid_config):
    check_files(validate_config(valid_config))


@pytest.mark.parametrize("case", CASES)
def test_mistake_is_one_line_from_xlt_config(valid_config, case):
    mutate, message = CASES[case]
    config = copy.deepcopy(valid_config)
    mutate(config)
    with pytest.raises(XltError) as error:
        check_files(validate_config(config, source="my.yaml"), source="my.yaml")
    assert str(error.value) == f"my.yaml: {message}"


# Each snakemake start costs seconds: these run by default, every case with the slow tests.
ON_THE_COMMAND_LINE = {
    "unknown nested key",
    "related family with no language",
    "model with neither path nor id",
    "negative inference batch size",
    "model name that injects shell",
    "language with no prompt template",
}


@pytest.mark.parametrize(
    "case", [case if case in ON_THE_COMMAND_LINE else pytest.param(case, marks=pytest.mark.slow) for case in CASES]
)
def test_mistake_stops_snakemake_before_any_job(valid_config, tmp_path, case):
    mutate, message = CASES[case]
    mutate(valid_config)
    configfile = write_config(valid_config, tmp_path / "my config.yaml")
    workdir = tmp_path / "run"
    workdir.mkdir()

    result = run_cli(workdir, configfile, "--cores", "1")

    assert result.returncode != 0
    assert f"{configfile}: {message}" in result.stderr.splitlines()
    assert "Traceback" not in result.stderr and "Failed validating" not in result.stderr
    assert files_under(workdir / "results") == [] and files_under(workdir / "logs") == []
    assert not (workdir / "pwned").exists() and not (tmp_path / "pwned").exists()


@pytest.mark.plans
def test_dry_run_shows_the_same_line(valid_config, tmp_path):
    mutate, message = CASES["unknown nested key"]
    mutate(valid_config)
    configfile = write_config(valid_config, tmp_path / "config.yaml")
    result = run_cli(tmp_path, configfile, "-n")
    shown = result.stdout + result.stderr  # a dry run reports on standard output
    assert result.returncode != 0
    assert f"{configfile}: {message}" in shown.splitlines()
    assert "Traceback" not in shown
