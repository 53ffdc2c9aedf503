import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from xlt.stages import compare, log_to

with log_to(snakemake.log[0]):
    compare(
        snakemake.input.scored,
        snakemake.params.study,
        snakemake.output.effects,
        snakemake.output.alignment,
        snakemake.output.gains,
    )
