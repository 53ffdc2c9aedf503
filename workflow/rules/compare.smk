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
        study=study_config(),
    script:
        "../scripts/compare.py"
