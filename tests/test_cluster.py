"""What each job asks SLURM for (xlt.cluster), checked as the real executor plugin
builds the sbatch command from the resources the workflow plans: the paper study's
2-node DeepSeek-V3 fine-tuning job is one task per node with its GPUs per node, its
CPUs per task and the GPU partition, and the inner srun gets its CPUs per task too."""

from __future__ import annotations

import shlex
from types import SimpleNamespace

import pytest
from snakemake_runs import REPO, planned_jobs, shipped_study, snakemake_command

from xlt.cluster import job_resources, model_job_resources
from xlt.config import load_config

PAPER = REPO / "config" / "paper.yaml"


class Resources(dict):
    """A job's resources as the plugin reads them: job.resources.get(key) and
    job.resources.key."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def _value(text: str):
    return int(text) if text.lstrip("-").isdigit() else text


def sbatch_command(resources: dict, threads: int) -> str:
    """The sbatch command the plugin (snakemake-executor-plugin-slurm) submits for a job
    with these resources: its own get_submit_command, get_partition_arg and
    set_gres_string, as its executor calls them."""
    from snakemake_executor_plugin_slurm import Executor
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = SimpleNamespace(
        resources=Resources({key: value for key, value in resources.items() if value is not None}), threads=threads
    )
    executor = SimpleNamespace(_partitions=None, _fallback_partition=None, logger=None)
    params = {
        "run_uuid": "run",
        "slurm_logfile": "log",
        "comment_str": "rule_finetune",
        "account": "",
        "partition": Executor.get_partition_arg(executor, job),
        "workdir": "/work",
    }
    return get_submit_command(job, params) + set_gres_string(job)


@pytest.fixture(scope="module")
def paper_plan(tmp_path_factory) -> dict[str, tuple[dict, str]]:
    """'<rule> <wildcards>' -> (resources, shell command) of each job of the paper
    study's plan through profiles/slurm."""
    study = shipped_study(tmp_path_factory.mktemp("paper"))
    printed = snakemake_command(
        REPO / "Snakefile",
        study,
        study / "config" / "paper.yaml",
        "-n",
        "-p",
        "--profile",
        str(REPO / "profiles" / "slurm"),
    )
    jobs = {}
    for rule, fields in planned_jobs(printed):
        resources = dict(item.split("=", 1) for item in fields.get("resources", "").split(", ") if "=" in item)
        resources = {key: _value(value) for key, value in resources.items()}
        jobs[f"{rule} {fields.get('wildcards', '')}".strip()] = (resources, fields.get("threads", "1"))
    commands = [line.split("Shell command: ", 1)[1] for line in printed.splitlines() if "Shell command: " in line]
    return {"jobs": jobs, "commands": commands}


@pytest.mark.plans
def test_v3_finetune_is_submitted_one_task_per_node_with_its_gpus_per_node(paper_plan):
    config = load_config(PAPER)
    finetune = config["models"]["deepseek-v3"]["finetune"]
    nodes, gpus, threads = (
        finetune["launcher"]["num_machines"],
        finetune["resources"]["gpu"],
        finetune["resources"]["threads"],
    )
    assert (nodes, gpus) == (2, 16)
    planned = {job: value for job, value in paper_plan["jobs"].items() if job.startswith("finetune model=deepseek-v3")}
    assert len(planned) == len(config["source_languages"])
    for resources, planned_threads in planned.values():
        words = shlex.split(sbatch_command(resources, int(planned_threads)))
        assert words[0] == "sbatch"
        assert "--nodes=2" in words and "--ntasks=2" in words, words
        assert "--gres=gpu:h200:8" in words, words
        assert f"--cpus-per-task={threads}" in words
        assert words[words.index("-p") + 1] == config["resources"]["partitions"]["gpu"]
        assert not [word for word in words if word.startswith(("--gpus", "--ntasks-per-gpu"))], words
        assert words[words.index("--mem") + 1] == str(finetune["resources"]["mem_mb"])
    launches = [
        command for command in paper_plan["commands"] if "--model deepseek-v3" in command and " finetune " in command
    ]
    assert launches
    for command in launches:
        srun = command[command.index("srun") :].split()
        assert srun[:5] == [
            "srun",
            "--nodes=2",
            "--ntasks-per-node=1",
            f"--cpus-per-task={threads}",
            "--kill-on-bad-exit=1",
        ]


@pytest.mark.plans
def test_every_paper_job_names_its_gpu_model_and_partition(paper_plan):
    """Every GPU job asks for a GPU type and goes to the GPU partition; every other
    submitted job (model preparation) to the CPU partition."""
    partitions = load_config(PAPER)["resources"]["partitions"]
    assert partitions["gpu"] and partitions["cpu"] and partitions["gpu"] != partitions["cpu"]
    submitted = {
        job: value
        for job, value in paper_plan["jobs"].items()
        if job.split()[0] in ("prepare_model", "finetune", "merge", "predict")
    }
    assert {job.split()[0] for job in submitted} >= {"prepare_model", "finetune", "predict"}
    for job, (resources, threads) in submitted.items():
        words = shlex.split(sbatch_command(resources, int(threads)))
        gpu_words = [word for word in words if word.startswith(("--gpus=", "--gres=gpu:"))]
        if job.split()[0] == "prepare_model":
            assert gpu_words == [] and words[words.index("-p") + 1] == partitions["cpu"], job
        else:
            assert len(gpu_words) == 1 and gpu_words[0].count(":") == (1 if gpu_words[0].startswith("--gpus") else 2), (
                job,
                gpu_words,
            )
            assert words[words.index("-p") + 1] == partitions["gpu"], job


def test_one_node_jobs_ask_for_gpus_of_a_model_and_cpu_jobs_for_the_cpu_partition():
    config = {"resources": {"partitions": {"gpu": "gpu", "cpu": "cpu"}}}
    one_gpu = job_resources(config, {"gpu": 4, "gpu_model": "h100", "mem_mb": 1000, "runtime": 60, "threads": 8})
    words = shlex.split(sbatch_command(one_gpu, 8))
    assert "--gpus=h100:4" in words and "--cpus-per-task=8" in words and words[words.index("-p") + 1] == "gpu"
    assert not [word for word in words if word.startswith(("--ntasks", "--gres", "--nodes=2"))]
    cpu = job_resources(config, {"gpu": 0, "gpu_model": None, "mem_mb": 1000, "runtime": 60, "threads": 2})
    words = shlex.split(sbatch_command(cpu, 2))
    assert words[words.index("-p") + 1] == "cpu" and "--ntasks=1" in words
    assert not [word for word in words if word.startswith(("--gpus", "--gres"))]
    # No partition configured: the empty string, which the plugin reads as none given
    # (it then asks the cluster for its default partition).
    no_partitions = {"resources": {"partitions": {"gpu": None, "cpu": None}}}
    assert (
        job_resources(no_partitions, {"gpu": 1, "gpu_model": None, "mem_mb": 1, "runtime": 1, "threads": 1})[
            "slurm_partition"
        ]
        == ""
    )


def test_the_paper_configs_model_jobs_each_have_resources():
    config = load_config(PAPER)
    for model in config["models"]:
        for stage in ("finetune", "inference"):
            resources = model_job_resources(config, model, stage)
            assert resources["slurm_partition"] == config["resources"]["partitions"]["gpu"]
            assert resources["gpu"] or resources["gres"], (model, stage)
