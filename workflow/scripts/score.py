import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from xlt.stages import log_to, score

with log_to(snakemake.log[0]):
    score(
        list(snakemake.input.predictions),
        list(snakemake.input.data),
        snakemake.params.study,
        snakemake.output.accuracy,
        snakemake.output.scored,
    )
