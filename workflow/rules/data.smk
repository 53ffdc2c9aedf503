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
        data=config["data"],
        langs=LANGS,
    script:
        "../scripts/prepare_data.py"
