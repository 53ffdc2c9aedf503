rule prepare_model:
    input:
        model_source_input,
    output:
        directory(paths.BASE_MODEL),
    params:
        entry=lambda wildcards: {
            key: config["models"][wildcards.model].get(key)
            for key in ("id", "revision", "path", "package", "trust_remote_code")
        },
    conda:
        "../../envs/models.yaml"
    log:
        "logs/prepare_model/{model}.log",
    threads: config["resources"]["prepare_model"]["threads"]
    resources:
        mem_mb=config["resources"]["prepare_model"]["mem_mb"],
        runtime=config["resources"]["prepare_model"]["runtime"],
    script:
        "../scripts/prepare_model.py"
