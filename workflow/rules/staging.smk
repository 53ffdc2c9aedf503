localrules:
    stage_model,
    stage_dataset,


# Hub models downloaded once, at their pinned commits, into staging.dir (shared storage)
# by local rules: the node that runs Snakemake has the network, compute nodes may not,
# and every model job then loads the staged files with the hub offline.
rule stage_model:
    output:
        directory(paths.STAGED_MODEL.format(staging=STAGING, model="{model}")),
    log:
        paths.LOGS["stage_model"],
    wildcard_constraints:
        model="|".join(re.escape(m) for m in STAGED_MODELS) or "^$",
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=light_resource("mem_mb"),
        runtime=light_resource("runtime"),
    # No code param: what is downloaded is the id at its commit (in the settings), and a
    # change to the downloading code must not fetch 690 GB again.
    params:
        settings=job_settings("prepare_model"),
        xlt=xlt_launcher,
    shell:
        "{params.xlt} stage-model --model {wildcards.model:q} --settings {params.settings:q}"
        " --out {output:q} --log {log:q}"


# A block-scaled FP8 checkpoint (models.NAME.dequantize_fp8: DeepSeek-V3) in bfloat16,
# once, for training to load it partitioned (xlt.fp8). A CPU job: one shard at a time.
rule convert_fp8:
    input:
        paths.STAGED_MODEL.format(staging=STAGING, model="{model}"),
    output:
        directory(paths.CONVERTED_MODEL.format(staging=STAGING, model="{model}")),
    log:
        paths.LOGS["convert_fp8"],
    wildcard_constraints:
        model="|".join(re.escape(m) for m in FP8_MODELS) or "^$",
    conda:
        "../../envs/models.yaml"
    threads: config["resources"]["prepare_model"]["threads"]
    resources:
        mem_mb=config["resources"]["prepare_model"]["mem_mb"],
        runtime=config["resources"]["prepare_model"]["runtime"],
    params:
        code=stage_fingerprint("convert_fp8"),
        xlt=model_job_launcher,
    shell:
        "{params.xlt} convert-fp8 --model {wildcards.model:q} --staged {input:q} --out {output:q} --log {log:q}"


# Belebele and the Hub training sets at their revisions, read by the local data rules.
rule stage_dataset:
    output:
        directory(paths.STAGED_DATASET.format(staging=STAGING, dataset="{dataset}")),
    log:
        paths.LOGS["stage_dataset"],
    wildcard_constraints:
        dataset="|".join(re.escape(d) for d in STAGED_DATASETS) or "^$",
    conda:
        "../../envs/light.yaml"
    threads: 1
    resources:
        mem_mb=light_resource("mem_mb"),
        runtime=light_resource("runtime"),
    params:
        settings=lambda wildcards: json.dumps(
            {"id": STAGED_DATASETS[wildcards.dataset].repo_id, "revision": STAGED_DATASETS[wildcards.dataset].revision}
        ),
        xlt=xlt_launcher,
    shell:
        "{params.xlt} stage-dataset --dataset {wildcards.dataset:q} --settings {params.settings:q}"
        " --out {output:q} --log {log:q}"
