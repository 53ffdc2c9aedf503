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
        settings=job_settings("score"),
        # Scoring re-extracts every answer: a changed extractor reruns it (and what
        # follows), never inference.
        code=stage_fingerprint("score"),
        xlt=xlt_launcher,
    shell:
        "{params.xlt} score --predictions {input.predictions:q} --data {input.data:q} --settings {params.settings:q}"
        " --accuracy {output.accuracy:q} --items {output.scored:q} --log {log:q}"
