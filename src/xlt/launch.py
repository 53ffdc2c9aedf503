"""The start of a model job's shell command: `python -m xlt` in one process, or
`accelerate launch ... -m xlt` with one process per GPU, under `srun` on several nodes.

Built here word by word with shlex.quote, so the command Snakemake prints
(`snakemake -n -p`) is exactly the one it runs, and no configured value (a path, a
model name) reaches the shell unquoted.
"""

from __future__ import annotations

import shlex
from pathlib import Path

# The first node of a SLURM allocation: every node's launcher meets the others there.
MAIN_HOST = 'export XLT_MAIN_HOST="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"'


def _program(python: str | None, name: str) -> str:
    """`name` beside the interpreter that runs the workflow, or as found on PATH (a
    conda environment's) when `python` is None."""
    if python is None:
        return name
    return shlex.quote(python if name == "python" else str(Path(python).with_name(name)))


def _module_path(src_dir: str) -> str:
    """This checkout's code first on the module path (a conda environment holds the
    dependencies, not xlt itself)."""
    return f"PYTHONPATH={shlex.quote(src_dir)}${{PYTHONPATH:+:$PYTHONPATH}}"


def xlt_command(src_dir: str, python: str | None) -> str:
    return f"{_module_path(src_dir)} {_program(python, 'python')} -m xlt"


def finetune_launch(launcher: dict, gpus: int, threads: int, src_dir: str, python: str | None) -> str:
    """The words before `finetune ...` for a model's `finetune.launcher` settings, its
    job's GPU count (all nodes together) and CPU threads (per node)."""
    if launcher["type"] == "in_process":
        return xlt_command(src_dir, python)
    machines = launcher["num_machines"]
    words = [
        _program(python, "accelerate"),
        "launch",
        "--config_file",
        shlex.quote(launcher["config_file"]),
        "--num_machines",
        str(machines),
        "--num_processes",
        str(gpus),
        "--main_process_port",
        str(launcher["main_process_port"]),
    ]
    if machines == 1:
        return " ".join([_module_path(src_dir), *words, "-m", "xlt"])
    # One launcher per node, each starting gpus / machines processes; they find each
    # other through torch's c10d rendezvous on the first node, so no node needs to know
    # its own rank. srun gets the CPUs per task again: since SLURM 22.05 a step does not
    # inherit the job's --cpus-per-task, and each node's launcher would get one CPU.
    words += ["--rdzv_backend", "c10d", "--main_process_ip", '"$XLT_MAIN_HOST"']
    srun = ["srun", f"--nodes={machines}", "--ntasks-per-node=1", f"--cpus-per-task={threads}", "--kill-on-bad-exit=1"]
    return f"{MAIN_HOST}; " + " ".join([_module_path(src_dir), *srun, *words, "-m", "xlt"])


def threads_per_process(threads: int, local_processes: int) -> int:
    """A job's CPU threads shared among the training processes of one node."""
    return max(1, threads // max(1, local_processes))
