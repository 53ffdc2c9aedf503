rule proximity:
    output:
        proximity=paths.PROXIMITY,
    log:
        paths.LOGS["proximity"],
    conda:
        "../../envs/light.yaml"
    threads: 1
    resources:
        mem_mb=light_resource("mem_mb"),
        runtime=light_resource("runtime"),
    params:
        settings=job_settings("proximity"),
        code=stage_fingerprint("proximity"),
        xlt=xlt_launcher,
    shell:
        "{params.xlt} proximity --settings {params.settings:q} --out {output.proximity:q} --log {log:q}"
