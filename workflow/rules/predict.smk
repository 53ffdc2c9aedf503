# One job per model x variant x prompt writes every language: a model is loaded once
# per job, which on a cluster (minutes for a 70B model) and on a laptop (seconds per
# process) costs more than the generation of a small language's items.
rule predict:
    input:
        unpack(predict_inputs),
    output:
        expand(paths.PREDICTIONS, lang=LANGS, allow_missing=True),
    log:
        paths.LOGS["predict"],
    conda:
        "../../envs/models.yaml"
    threads: stage_resource("inference", "threads")
    resources:
        mem_mb=stage_resource("inference", "mem_mb"),
        runtime=stage_resource("inference", "runtime"),
        gpu=stage_resource("inference", "gpu"),
        gpu_model=stage_resource("inference", "gpu_model"),
    params:
        entry=lambda wildcards: model_entry(wildcards.model, stages=("inference",)),
        template_files={lang: template_file(lang) for lang in LANGS},
        max_new_tokens=lambda wildcards: config["prompts"][f"{wildcards.prompt}_max_new_tokens"],
        scoring=lambda wildcards: config["prompts"]["direct_scoring"] if wildcards.prompt == "direct" else "generate",
        # A changed engine or prompt code reruns inference (Snakemake tracks the
        # script, not the modules it imports).
        engine=inference_fingerprint(),
    script:
        "../scripts/predict.py"
