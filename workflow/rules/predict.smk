# One job per model x variant x generated prompt writes every language: a model is
# loaded once per job, which on a cluster (minutes for a 70B model) and on a laptop
# (seconds per process) costs more than the generation of a small language's items.
# The direct job also writes the choice cell: its label log-probabilities come from
# the direct prompt's own first decoding step.
rule predict:
    input:
        unpack(predict_inputs),
    output:
        expand(paths.PREDICTIONS, lang=LANGS, allow_missing=True),
    log:
        paths.LOGS["predict"],
    wildcard_constraints:
        prompt="cot",
    conda:
        "../../envs/models.yaml"
    threads: stage_resource("inference", "threads")
    resources:
        mem_mb=stage_resource("inference", "mem_mb"),
        runtime=stage_resource("inference", "runtime"),
        gpu=stage_resource("inference", "gpu"),
        gpu_model=stage_resource("inference", "gpu_model"),
    params:
        **predict_params("cot"),
    shell:
        "{params.xlt} predict --model {wildcards.model:q} --variant {wildcards.variant:q} --prompt {params.prompt:q}"
        " --settings {params.settings:q} --base {input.base:q} {params.adapter} --data {input.data:q}"
        " --out {output:q} --threads {threads} --gpus {resources.gpu:q} --log {log:q}"


use rule predict as predict_direct with:
    output:
        expand(paths.PREDICTIONS, prompt=paths.JOB_CELLS["direct"], lang=LANGS, allow_missing=True),
    log:
        paths.LOGS["predict_direct"],
    params:
        **predict_params("direct"),
