# xlt: is a gain in one language after fine-tuning on another due to relatedness,
# or to learning the task's format? See README.md and config/config.yaml.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.17")

# The workflow's own src/ first, so it runs the same code whether or not xlt is
# installed in the environment that runs Snakemake (or a job's conda environment).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from xlt.config import read_config_file
from xlt.errors import XltError

DEFAULT_CONFIG = "config/config.yaml"

# The default study unless --configfile names another: Snakemake would otherwise merge
# the two, and the paper's models would run beside the embedded ones. It is read as
# plain YAML first: `configfile:` loads through YTE, which would run the Python of a
# file with __use_yte__ (a --configfile, Snakemake loads before this file runs).
if not config:
    try:
        read_config_file(DEFAULT_CONFIG)
    except XltError as error:
        raise WorkflowError(str(error)) from None

    configfile: DEFAULT_CONFIG


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"


if STAGING:

    include: "workflow/rules/staging.smk"


include: "workflow/rules/finetune.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/proximity.smk"
include: "workflow/rules/report.smk"


# Run where snakemake runs, not as cluster jobs: each takes seconds to a minute without a
# GPU, less than a queue wait, and prepare_data may need the network that login nodes
# have and compute nodes often lack. Model jobs go to the cluster with config resources.
localrules:
    all,
    prepare_data,
    prepare_training,
    prepare_control,
    provenance,
    score,
    compare,
    proximity,
    report,


rule all:
    default_target: True
    input:
        all_outputs(),
