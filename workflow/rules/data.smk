rule prepare_data:
    input:
        unpack(data_inputs),
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


# Every source's fine-tuning examples in one job: they are cut to the same number, and
# checked against every language's test items.
rule prepare_training:
    input:
        unpack(training_inputs),
        test=expand(paths.DATA, lang=LANGS),
    output:
        training=expand(paths.TRAINING, source=SOURCES),
        checks=paths.TRAINING_CHECKS,
    log:
        paths.LOGS["prepare_training"],
    conda:
        "../../envs/light.yaml"
    threads: 1
    resources:
        mem_mb=light_resource("mem_mb"),
        runtime=light_resource("runtime"),
    params:
        settings=job_settings("prepare_training"),
        code=stage_fingerprint("prepare_training"),
        xlt=xlt_launcher,
        belebele=belebele_argument,
    shell:
        "{params.xlt} prepare-training --settings {params.settings:q} {params.belebele} --test-data {input.test:q}"
        " --out {output.training:q} --checks {output.checks:q} --log {log:q}"


# A source's format-only control examples (finetune.format_control): its training
# examples with every answer replaced by a seeded letter, balanced over A-D.
rule prepare_control:
    input:
        paths.TRAINING,
    output:
        paths.CONTROL_TRAINING,
    log:
        paths.LOGS["prepare_control"],
    conda:
        "../../envs/light.yaml"
    threads: 1
    resources:
        mem_mb=light_resource("mem_mb"),
        runtime=light_resource("runtime"),
    params:
        settings=job_settings("prepare_control"),
        code=stage_fingerprint("prepare_control"),
        xlt=xlt_launcher,
    shell:
        "{params.xlt} prepare-control --settings {params.settings:q} --data {input:q} --out {output:q} --log {log:q}"
