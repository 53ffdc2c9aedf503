# The finetune job is a shell command, so `snakemake -n -p` prints exactly what runs:
# `python -m xlt finetune ...` in one process, or `accelerate launch ... -m xlt finetune
# ...` (DeepSpeed ZeRO-3 or FSDP, per the model's finetune.launcher), under srun on
# several nodes. Values reach the shell quoted ({...:q}, or shlex.quote in xlt.launch).
rule finetune:
    input:
        unpack(finetune_inputs(paths.TRAINING)),
    output:
        directory(paths.ADAPTER),
    log:
        paths.LOGS["finetune"],
    priority: FINETUNE_PRIORITY
    conda:
        "../../envs/models.yaml"
    threads: stage_resource("finetune", "threads")
    # GPUs (per node on several nodes), tasks, CPUs per task and partition: xlt.cluster.
    resources:
        **model_job_resources_of("finetune"),
    params:
        settings=job_settings("finetune"),
        code=stage_fingerprint("finetune"),
        checkpoints=lambda wildcards: paths.CHECKPOINTS.format(model=wildcards.model, source=wildcards.source),
        launch=finetune_launcher,
    shell:
        "{params.launch} finetune --model {wildcards.model:q} --settings {params.settings:q}"
        " --base {input.base:q} --data {input.data:q} --template {input.template:q}"
        " --out {output:q} --checkpoints {params.checkpoints:q} --threads {threads} > {log:q} 2>&1"


# The format-only control of a source (finetune.format_control): the same job on the
# source's examples with seeded random letters as answers (rule prepare_control); the
# params not named here (settings, code, launch) are the finetune rule's.
use rule finetune as finetune_control with:
    input:
        unpack(finetune_inputs(paths.CONTROL_TRAINING)),
    output:
        directory(paths.CONTROL_ADAPTER),
    log:
        paths.LOGS["finetune_control"],
    params:
        checkpoints=lambda wildcards: paths.CONTROL_CHECKPOINTS.format(model=wildcards.model, source=wildcards.source),


# Optional (finetune.merge: true): base + adapter as one checkpoint, for inference
# backends that cannot load an adapter. It holds the whole model, as inference does.
rule merge:
    input:
        base=paths.BASE_MODEL,
        adapter=paths.ADAPTER,
    output:
        directory(paths.MERGED),
    log:
        paths.LOGS["merge"],
    conda:
        "../../envs/models.yaml"
    threads: stage_resource("inference", "threads")
    resources:
        **model_job_resources_of("inference"),
    params:
        settings=job_settings("merge"),
        code=stage_fingerprint("merge"),
        xlt=model_job_launcher,
    shell:
        "{params.xlt} merge --model {wildcards.model:q} --settings {params.settings:q}"
        " --base {input.base:q} --adapter {input.adapter:q} --out {output:q} --threads {threads} --log {log:q}"
