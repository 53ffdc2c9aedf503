rule prepare_model:
    input:
        model_source_input,
    output:
        directory(paths.BASE_MODEL),
    log:
        paths.LOGS["prepare_model"],
    conda:
        "../../envs/models.yaml"
    threads: config["resources"]["prepare_model"]["threads"]
    resources:
        mem_mb=config["resources"]["prepare_model"]["mem_mb"],
        runtime=config["resources"]["prepare_model"]["runtime"],
    params:
        entry=lambda wildcards: {key: config["models"][wildcards.model].get(key) for key in ("id", "revision", "path", "package", "trust_remote_code")},
    script:
        "../scripts/prepare_model.py"
