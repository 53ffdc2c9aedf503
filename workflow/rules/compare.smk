rule compare:
    input:
        scored=rules.score.output.scored,
    output:
        effects=paths.EFFECTS,
        alignment=paths.ALIGNMENT,
        gains=paths.GAINS,
        notes=paths.NOTES,
    params:
        study=study_config(),
    conda:
        "../../envs/light.yaml"
    log:
        "logs/compare.log",
    threads: 1
    resources:
        mem_mb=light_resource("mem_mb"),
        runtime=light_resource("runtime"),
    script:
        "../scripts/compare.py"
