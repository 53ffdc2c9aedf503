rule prepare_model:
    input:
        unpack(model_source_input),
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
        slurm_partition=partition(config, 0),
    params:
        settings=job_settings("prepare_model"),
        code=stage_fingerprint("prepare_model"),
        xlt=model_job_launcher,
    shell:
        "{params.xlt} prepare-model --model {wildcards.model:q} --settings {params.settings:q}"
        " --out {output:q} --threads {threads} --log {log:q}"
