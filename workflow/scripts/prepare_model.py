import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from xlt.stages import log_to, prepare_model

with log_to(snakemake.log[0]):
    prepare_model(snakemake.wildcards.model, snakemake.params.entry, snakemake.output[0], snakemake.threads)
