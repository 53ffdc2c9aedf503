rule finetune:
    input:
        base=paths.BASE_MODEL,
        data=paths.DATA.format(lang=SOURCE),
        template=template_file(SOURCE),
    output:
        directory(paths.ADAPTER),
    params:
        entry=lambda wildcards: model_entry(wildcards.model, stages=("finetune",)),
        checkpoints=lambda wildcards: paths.CHECKPOINTS.format(model=wildcards.model),
    conda:
        "../../envs/models.yaml"
    log:
        "logs/finetune/{model}.log",
    threads: stage_resource("finetune", "threads")
    resources:
        mem_mb=stage_resource("finetune", "mem_mb"),
        runtime=stage_resource("finetune", "runtime"),
        gpu=stage_resource("finetune", "gpu"),
        gpu_model=stage_resource("finetune", "gpu_model"),
    script:
        "../scripts/finetune.py"
