import sys
from pathlib import Path

# resolve(): scriptdir can read ".../workflow/rules/../scripts", whose lexical parents miss src/.
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from xlt.stages import log_to, predict

with log_to(snakemake.log[0], gpus=snakemake.resources.gpu):
    predict(
        snakemake.wildcards.model,
        snakemake.params.entry,
        snakemake.wildcards.variant,
        snakemake.params.prompt,
        snakemake.input.base,
        snakemake.input.get("adapter"),
        list(snakemake.input.data),
        snakemake.params.template_files,
        snakemake.params.max_new_tokens,
        snakemake.params.scoring,
        list(snakemake.output),
        snakemake.threads,
    )
