# One job per model x variant writes every prompt's cells in every language: a model is
# loaded once per job, which on a cluster (minutes for a 70B model) and on a laptop
# (seconds per process) costs more than the generation of a small language's items, and
# an item's direct and chain-of-thought prompts share their prompt pass (the passage,
# question and options are most of their tokens). The choice cell's label
# log-probabilities come from the direct prompt's own first decoding step; its option
# rotations and the cloze prompt (each option's text after passage, question and answer
# phrase) join the item's shared prompt pass, with no token generated. Each prompt's
# finished results are kept beside its outputs, so a change to one prompt's settings
# recomputes that prompt only (src/xlt/inference/shards.py).
rule predict:
    input:
        unpack(predict_inputs),
    output:
        expand(paths.PREDICTIONS, prompt=paths.PROMPTS, lang=LANGS, allow_missing=True),
    log:
        paths.LOGS["predict"],
    priority: predict_priority
    conda:
        predict_environment
    threads: stage_resource("inference", "threads")
    resources:
        **model_job_resources_of("inference"),
    params:
        settings=job_settings("predict"),
        # The engine's and the prompts' code (xlt.fingerprint): a change reruns inference.
        code=stage_fingerprint("predict"),
        xlt=model_job_launcher,
        adapter=adapter_argument,
    shell:
        "{params.xlt} predict --model {wildcards.model:q} --variant {wildcards.variant:q}"
        " --settings {params.settings:q} --base {input.base:q} {params.adapter} --data {input.data:q}"
        " --out {output:q} --threads {threads} --gpus {resources.gpu:q} --log {log:q}"
