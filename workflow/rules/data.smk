rule prepare_data:
    input:
        data_inputs,
    output:
        expand(paths.DATA, lang=LANGS),
    params:
        data=config["data"],
        langs=LANGS,
    conda:
        "../../envs/light.yaml"
    log:
        "logs/prepare_data.log",
    threads: 1
    resources:
        mem_mb=light_resource("mem_mb"),
        runtime=light_resource("runtime"),
    script:
        "../scripts/prepare_data.py"
