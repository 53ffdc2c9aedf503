import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from xlt.stages import log_to, report

with log_to(snakemake.log[0]):
    report(
        snakemake.input.accuracy,
        snakemake.input.effects,
        snakemake.input.alignment,
        snakemake.input.gains,
        snakemake.params.study,
        snakemake.params.out_dir,
    )
