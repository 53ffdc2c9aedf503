rule prepare_data:
    input:
        data_inputs,
    output:
        expand(paths.DATA, lang=LANGS),
    log:
        paths.LOGS["prepare_data"],
    conda:
        "../../envs/light.yaml"
    threads: 1
    resources:
        mem_mb=light_resource("mem_mb"),
        runtime=light_resource("runtime"),
    params:
        settings=job_settings("prepare_data"),
        code=stage_fingerprint("prepare_data"),
        xlt=xlt_launcher,
    shell:
        "{params.xlt} prepare-data --settings {params.settings:q} --out {output:q} --log {log:q}"
