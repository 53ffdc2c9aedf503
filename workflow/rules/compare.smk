rule compare:
    input:
        scored=rules.score.output.scored,
    output:
        effects=paths.EFFECTS,
        alignment=paths.ALIGNMENT,
        gains=paths.GAINS,
        notes=paths.NOTES,
    log:
        paths.LOGS["compare"],
    conda:
        "../../envs/light.yaml"
    threads: 1
    resources:
        mem_mb=light_resource("mem_mb"),
        runtime=light_resource("runtime"),
    params:
        settings=job_settings("compare"),
        code=stage_fingerprint("compare"),
        xlt=xlt_launcher,
        out_dir=lambda wildcards, output: str(Path(output.effects).parent),
    shell:
        "{params.xlt} compare --items {input.scored:q} --settings {params.settings:q}"
        " --out {params.out_dir:q} --log {log:q}"
