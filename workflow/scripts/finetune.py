from xlt.stages import finetune, log_to

with log_to(snakemake.log[0]):
    finetune(
        snakemake.wildcards.model,
        snakemake.params.entry,
        snakemake.input.base,
        snakemake.input.data,
        snakemake.params.templates,
        snakemake.params.template,
        snakemake.output[0],
        snakemake.params.checkpoints,
        snakemake.threads,
    )
