rule score:
    input:
        predictions=all_predictions(),
        data=expand(paths.DATA, lang=LANGS),
    output:
        accuracy=paths.ACCURACY,
        scored="results/scores/items.parquet",
    params:
        study=study_config(),
        # A changed extractor reruns scoring (and what follows), never inference.
        extractor=extractor_fingerprint(),
    conda:
        "../../envs/light.yaml"
    log:
        "logs/score.log",
    threads: 1
    resources:
        mem_mb=light_resource("mem_mb"),
        runtime=light_resource("runtime"),
    script:
        "../scripts/score.py"
