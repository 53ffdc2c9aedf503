import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from xlt.stages import log_to, prepare_data

with log_to(snakemake.log[0]):
    prepare_data(snakemake.params.data, snakemake.params.langs, list(snakemake.output))
