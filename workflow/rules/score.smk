rule score:
    input:
        predictions=all_predictions(),
        data=expand(paths.DATA, lang=LANGS),
    output:
        accuracy=paths.ACCURACY,
        scored=paths.ITEMS,
    log:
        paths.LOGS["score"],
    conda:
        "../../envs/light.yaml"
    threads: 1
    resources:
        mem_mb=light_resource("mem_mb"),
        runtime=light_resource("runtime"),
    params:
        study=study_config(),
        # A changed extractor reruns scoring (and what follows), never inference.
        extractor=extractor_fingerprint(),
    script:
        "../scripts/score.py"
