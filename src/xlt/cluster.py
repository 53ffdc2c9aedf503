"""What each job asks a cluster for: the Snakemake resources of a job, as the SLURM
executor plugin (snakemake-executor-plugin-slurm 2.8, its submit_string.py and
utils.set_gres_string) turns them into sbatch options.

- One node: `gpu` and `gpu_model` become `--gpus=MODEL:N`, `cpus_per_task`
  `--cpus-per-task`, `mem_mb` `--mem`, `runtime` `-t`, `slurm_partition` `-p`.
- Several nodes (a fine-tuning job with `launcher.num_machines` > 1): one task per node,
  each task one `accelerate launch` that starts a process per GPU of its node. `--gpus`
  counts GPUs of the whole job and lets SLURM place them unevenly, so the GPUs are asked
  per node as a generic resource (`gres`: `--gres=gpu:MODEL:N` is per node) and `gpu`
  stays unset. `mpi` tells the plugin that the job's command calls srun itself (its job
  step does not wrap the command in `srun -n1`, which would hold one node's CPUs); the
  plugin then needs `tasks` (`--ntasks`, one per node with `--nodes`: SLURM puts at
  least one task on every node of a job). The plugin reads `tasks` as tasks per GPU too,
  unless `tasks_per_gpu` is set: 0 leaves `--ntasks-per-gpu` out. `mem_mb` (`--mem`) and
  `cpus_per_task` are per node, as the config's `mem_mb` and `threads` are.
- GPU jobs go to the config's GPU partition, every other submitted job to its CPU
  partition; an empty partition is the cluster's default.

Resources are no parameters of a job: changing them reruns nothing.
"""

from __future__ import annotations

# The resources of a model job, each a key of the rules' `resources:` (None: not set).
RESOURCE_KEYS = (
    "gpu",
    "gpu_model",
    "gres",
    "nodes",
    "mpi",
    "tasks",
    "tasks_per_gpu",
    "cpus_per_task",
    "mem_mb",
    "runtime",
    "slurm_partition",
)


def partition(config: dict, gpus: int) -> str:
    """The partition of a job with `gpus` GPUs ('' for the cluster's default)."""
    partitions = config["resources"]["partitions"]
    return (partitions["gpu"] if gpus else partitions["cpu"]) or ""


def job_resources(config: dict, resources: dict, nodes: int = 1) -> dict:
    """The Snakemake resources of a job from a `resources` block of the config (gpu,
    gpu_model, mem_mb, runtime, threads; gpu counts all nodes' GPUs), on `nodes` nodes."""
    gpus, threads = resources["gpu"], resources["threads"]
    job = dict.fromkeys(RESOURCE_KEYS)
    job.update(
        nodes=nodes,
        cpus_per_task=threads,
        mem_mb=resources["mem_mb"],
        runtime=resources["runtime"],
        slurm_partition=partition(config, gpus),
    )
    if nodes == 1:
        job.update(gpu=gpus, gpu_model=resources["gpu_model"])
        return job
    # xlt.config.check_launcher has made gpus a multiple of nodes.
    gpu_type = f"{resources['gpu_model']}:" if resources["gpu_model"] else ""
    job.update(gres=f"gpu:{gpu_type}{gpus // nodes}", mpi="srun", tasks=nodes, tasks_per_gpu=0)
    return job


def model_job_resources(config: dict, model: str, stage: str) -> dict:
    """The resources of a model's `finetune` or `inference` jobs (predict, merge)."""
    block = config["models"][model][stage]
    nodes = block["launcher"]["num_machines"] if stage == "finetune" else 1
    return job_resources(config, block["resources"], nodes)
