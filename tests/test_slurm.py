"""The study through profiles/slurm on a real one-node SLURM cluster (slurmctld, slurmd
and munged from Debian's packages, started by .ci/slurm/start.sh): every job that is not
a local rule goes through sbatch and completes, a model's GPU request reaches SLURM as a
GPU allocation, and every artifact of the contract is there.

Needs root and `apt-get install munge slurm-wlm`; skipped without them, unless
XLT_REQUIRE_SLURM=1 (as in .ci/run), where a missing piece fails instead. Takes minutes:
marked `slurm` and run on its own (`pytest -m slurm`)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from snakemake_runs import cli_command, planned_jobs, write_test_config

from xlt import paths
from xlt.languages import source_languages

CLUSTER_TOOLS = (
    "munged",
    "mungekey",
    "slurmctld",
    "slurmd",
    "sbatch",
    "squeue",
    "scontrol",
    "scancel",
    "sinfo",
    "srun",
)
# The test cluster's one node has one GPU of this type (.ci/slurm/start.sh); the job
# still runs on the CPU, as torch sees no CUDA device there.
GPU_MODEL, GPU_TYPE = "tiny-dense", "fake"
WORKFLOW_TIMEOUT_S = 1200


def missing_cluster_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "the test cluster's daemons run as root; run as root"
    missing = [tool for tool in CLUSTER_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found: apt-get install munge slurm-wlm"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm not installed: pip install -e '.[test]'"
    return None


def environment_without_slurm() -> dict[str, str]:
    """This process's environment less any SLURM_* variable (of a cluster it may run
    in), which would send the test's clients elsewhere."""
    return {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}


def slurm_command(repo: Path, workdir: Path, configfile: Path) -> list[str]:
    """The study through profiles/slurm, as a user starts it."""
    return cli_command(workdir, configfile, "--profile", str(repo / "profiles" / "slurm"), snakefile=repo / "Snakefile")


def run_in_own_group(command: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run `command` in a session of its own; on a timeout or any other exit from here
    (pytest's own timeout included) its whole process group is ended, so no local job
    outlives the test."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            # Snakemake cancels its SLURM jobs on TERM.
            os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return subprocess.CompletedProcess(command, process.returncode, output)


@pytest.fixture
def slurm_cluster(repo):
    """The environment (SLURM_CONF, PATH) for the clients of a fresh one-node cluster.
    The cluster is stopped, with any job still running, however the test ends."""
    reason = missing_cluster_prerequisite()
    if reason:
        if os.environ.get("XLT_REQUIRE_SLURM") == "1":
            pytest.fail(f"XLT_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    # A short folder name: munged's socket path must stay under 108 characters.
    directory = Path(tempfile.mkdtemp(prefix="xlt-slurm-"))
    try:
        started = subprocess.run(
            ["bash", str(repo / ".ci" / "slurm" / "start.sh"), str(directory)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert started.returncode == 0, f"start.sh failed:\n{started.stderr}"
        env = environment_without_slurm()
        env.update(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
        yield env
    finally:
        subprocess.run(["bash", str(repo / ".ci" / "slurm" / "stop.sh"), str(directory)], timeout=120)
        shutil.rmtree(directory, ignore_errors=True)


def slurm_jobs(env: dict[str, str]) -> list[dict[str, str]]:
    """Every job the controller knows (finished ones stay for MinJobAge), as fields;
    with details, so JOB_GRES holds the generic resources a job was given."""
    shown = subprocess.run(
        ["scontrol", "--details", "--oneliner", "show", "job"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [
        dict(field.split("=", 1) for field in line.split() if "=" in field)
        for line in shown.stdout.splitlines()
        if line.strip()
    ]


def expected_submissions(config: dict) -> list[str]:
    """The sbatch comment (the plugin's `rule_<rule>_wildcards_<values>`) of every job
    that is not a local rule: model preparation, fine-tuning and inference."""
    comments = []
    (source,) = source_languages(config)
    for model in config["models"]:
        comments += [f"rule_prepare_model_wildcards_{model}", f"rule_finetune_wildcards_{model}_{source}"]
        comments += [f"rule_predict_wildcards_{model}_{variant}" for variant in paths.study_variants([source])]
    return sorted(comments)


def contract_artifacts(config: dict) -> list[str]:
    langs, models, (source,) = list(config["languages"]), list(config["models"]), source_languages(config)
    artifacts = [paths.DATA.format(lang=lang) for lang in langs]
    for model in models:
        artifacts += [
            f"{paths.BASE_MODEL.format(model=model)}/xlt_model.json",
            f"{paths.ADAPTER.format(model=model, source=source)}/adapter_model.safetensors",
        ]
        artifacts += [
            paths.PREDICTIONS.format(model=model, variant=variant, prompt=prompt, lang=lang)
            for variant in paths.study_variants([source])
            for prompt in paths.PROMPTS
            for lang in langs
        ]
    artifacts += [paths.ACCURACY, paths.EFFECTS, paths.ALIGNMENT, paths.GAINS]
    artifacts += [
        f"{paths.REPORT}/{name}"
        for name in ("summary.md", "accuracy.png", "parse_rate.png", "gains_by_group.png", "ft_vs_cot_gain.png")
    ]
    return artifacts


def gpu_test_config(repo: Path, workdir: Path, tiny_models: dict[str, Path]) -> tuple[Path, dict]:
    """The test config, with one model's fine-tuning asking for the test cluster's GPU."""
    configfile = write_test_config(workdir, tiny_models)
    config = yaml.safe_load(configfile.read_text())
    config["models"][GPU_MODEL]["finetune"]["resources"] = {"gpu": 1, "gpu_model": GPU_TYPE}
    configfile.write_text(yaml.safe_dump(config))
    return configfile, config


def planned_resources(dry_run_output: str) -> dict[str, str]:
    """'<rule> <wildcards>' -> resources, for each job of a dry run."""
    return {
        f"{rule} {fields.get('wildcards', '')}".strip(): fields["resources"]
        for rule, fields in planned_jobs(dry_run_output)
    }


def test_profile_plans_each_models_gpu_request(repo, tiny_models, tmp_path):
    """Without a cluster: the profile loads, and a model's GPU request reaches the
    resources of its fine-tuning job and of no other."""
    configfile, _ = gpu_test_config(repo, tmp_path, tiny_models)
    plan = subprocess.run(
        slurm_command(repo, tmp_path, configfile) + ["--dry-run"],
        env=environment_without_slurm(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plan.returncode == 0, plan.stdout[-4000:] + plan.stderr[-4000:]
    planned = planned_resources(plan.stdout)
    assert f"predict model={GPU_MODEL}, variant=ft-arb_Arab" in planned
    gpu_requests = {job: resources for job, resources in planned.items() if "gpu_model=" in resources}
    assert list(gpu_requests) == [f"finetune model={GPU_MODEL}, source=arb_Arab"]
    assert f"gpu=1, gpu_model={GPU_TYPE}" in gpu_requests[f"finetune model={GPU_MODEL}, source=arb_Arab"]


@pytest.mark.slurm
@pytest.mark.timeout(WORKFLOW_TIMEOUT_S + 300)
def test_study_runs_through_sbatch_with_the_gpu_request(repo, tiny_models, slurm_cluster, tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    configfile, config = gpu_test_config(repo, workdir, tiny_models)
    # This cluster keeps no accounting (no sacct) and starts jobs at once.
    snakemake = slurm_command(repo, workdir, configfile)
    snakemake += ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2"]

    run = run_in_own_group(snakemake, slurm_cluster, timeout=WORKFLOW_TIMEOUT_S)

    assert run.returncode == 0, run.stdout[-8000:]
    missing = [artifact for artifact in contract_artifacts(config) if not (workdir / artifact).is_file()]
    assert missing == []

    jobs = slurm_jobs(slurm_cluster)
    assert sorted(job.get("Comment", "") for job in jobs) == expected_submissions(config)
    assert {job["JobState"] for job in jobs} == {"COMPLETED"}
    requested = {
        job["Comment"]: job.get("TresPerJob")
        for job in jobs
        if "gpu" in job.get("TresPerJob", "") + job.get("TresPerNode", "")
    }
    assert requested == {f"rule_finetune_wildcards_{GPU_MODEL}_arb_Arab": f"gres:gpu:{GPU_TYPE}:1"}
    given = {job["Comment"]: job["JOB_GRES"] for job in jobs if job["JOB_GRES"] != "(null)"}
    assert given == {f"rule_finetune_wildcards_{GPU_MODEL}_arb_Arab": f"gpu:{GPU_TYPE}:1"}

    replan = run_in_own_group(snakemake + ["--dry-run"], slurm_cluster, timeout=300)
    assert replan.returncode == 0, replan.stdout[-8000:]
    assert "Nothing to be done" in replan.stdout
    assert len(slurm_jobs(slurm_cluster)) == len(jobs)


# A job of the shape xlt.cluster gives a fine-tuning job on several nodes (the job's
# command calls srun itself, tasks, GPUs as a per-node generic resource, CPUs per task),
# on the test cluster's one node: two tasks there.
MULTI_TASK_SNAKEFILE = """
rule all:
    input:
        "tasks.txt",


rule tasks:
    output:
        "tasks.txt",
    resources:
        nodes=1,
        mpi="srun",
        tasks=2,
        tasks_per_gpu=0,
        gres="gpu:fake:1",
        cpus_per_task=1,
        mem_mb=100,
        runtime=5,
    shell:
        "srun --ntasks=2 --cpus-per-task=1 --kill-on-bad-exit=1 "
        "sh -c 'echo $SLURM_PROCID $SLURM_CPUS_PER_TASK' > {output}"
"""


@pytest.mark.slurm
@pytest.mark.timeout(600)
def test_a_multi_task_gpu_job_runs_its_tasks_under_srun(repo, slurm_cluster, tmp_path):
    """The plugin submits it with --ntasks and the per-node GPU gres (its MPI path:
    without tasks it refuses the job), and the job's own srun starts both tasks with
    their CPUs (SLURM 22.05 and later no longer pass the job's --cpus-per-task on)."""
    from xlt.cluster import RESOURCE_KEYS

    (tmp_path / "Snakefile").write_text(MULTI_TASK_SNAKEFILE)
    assert {"nodes", "mpi", "tasks", "tasks_per_gpu", "gres", "cpus_per_task"} <= set(RESOURCE_KEYS)
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(tmp_path / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--executor",
        "slurm",
    ]
    command += [
        "--jobs",
        "1",
        "--latency-wait",
        "10",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
    ]
    run = run_in_own_group(command, slurm_cluster, timeout=480)
    assert run.returncode == 0, run.stdout[-8000:]
    lines = sorted((tmp_path / "tasks.txt").read_text().split("\n")[:-1])
    assert lines == ["0 1", "1 1"]
    (job,) = slurm_jobs(slurm_cluster)
    assert job["JobState"] == "COMPLETED" and job["NumTasks"] == "2", job
    assert job["TresPerNode"] == "gres:gpu:fake:1" and job["JOB_GRES"] == "gpu:fake:1", job
