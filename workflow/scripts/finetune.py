import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from xlt.stages import finetune, log_to

with log_to(snakemake.log[0], gpus=snakemake.resources.gpu):
    finetune(
        snakemake.wildcards.model,
        snakemake.params.entry,
        snakemake.input.base,
        snakemake.input.data,
        snakemake.input.template,
        snakemake.output[0],
        snakemake.params.checkpoints,
        snakemake.threads,
    )
