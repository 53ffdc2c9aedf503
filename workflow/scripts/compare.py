from xlt.stages import compare, log_to

with log_to(snakemake.log[0]):
    compare(
        snakemake.input.items,
        snakemake.params.study,
        snakemake.output.effects,
        snakemake.output.alignment,
        snakemake.output.gains,
    )
