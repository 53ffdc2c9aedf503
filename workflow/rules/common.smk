import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The Snakefile put the workflow's own src/ first on sys.path.
from xlt import paths
from xlt.config import check_files, read_config_file, validate_config
from xlt.errors import XltError
from xlt.fingerprint import stage_fingerprint
from xlt.jobs import language_template, settings_json
from xlt.launch import finetune_launch, xlt_command
from xlt.recipes import recipe_warning

# The same one-line messages as the `xlt` commands (snakemake.utils.validate would print
# the whole schema), before any job: the config with its defaults filled in replaces
# what was loaded. Each config file is read again as xlt reads it (plain YAML: no YTE,
# tags, aliases or duplicate keys), since Snakemake evaluated YTE when it loaded them.
CONFIG_SOURCE = ", ".join(str(path) for path in workflow.configfiles) or "config"
try:
    for configfile_path in workflow.configfiles:
        read_config_file(configfile_path)
    config.update(validate_config(config, source=CONFIG_SOURCE))
    check_files(config, source=CONFIG_SOURCE)
except XltError as error:
    raise WorkflowError(str(error)) from None


# One line at planning: models trained differently are a confound of comparing them.
RECIPE_WARNING = recipe_warning(config)
if RECIPE_WARNING:
    print(RECIPE_WARNING, file=sys.stderr)


LANGS = list(config["languages"])
MODELS = list(config["models"])
SOURCES = config["source_languages"]
# Source language -> its fine-tuned variant (ft with one source, ft-<source> with several)
FT_VARIANTS = paths.finetuned_variants(SOURCES)
SOURCE_OF_VARIANT = {variant: source for source, variant in FT_VARIANTS.items()}
VARIANTS = paths.study_variants(SOURCES)
EXTERNAL_TRAINING = isinstance(config["finetune"]["data"], dict)
# One source keeps the single-source folder names (results/models/{model}/adapter)
ADAPTER = paths.ADAPTER if len(SOURCES) == 1 else paths.SOURCE_ADAPTER
MERGED = paths.MERGED if len(SOURCES) == 1 else paths.SOURCE_MERGED


wildcard_constraints:
    model="|".join(re.escape(m) for m in MODELS),
    variant="|".join(re.escape(v) for v in VARIANTS),
    source="|".join(re.escape(s) for s in SOURCES),
    prompt="|".join(paths.PROMPTS),
    lang="|".join(re.escape(l) for l in LANGS),


def all_outputs():
    return [
        paths.ACCURACY,
        paths.EFFECTS,
        paths.ALIGNMENT,
        paths.GAINS,
        paths.PROXIMITY,
        f"{paths.REPORT}/{paths.REPORT_SUMMARY}",
    ] + [paths.source_paths(model, source, SOURCES)["merged"] for model in MODELS if config["models"][model]["finetune"]["merge"] for source in SOURCES]


def job_settings(stage):
    """The `--settings` of a stage's jobs (xlt.jobs.job_settings), as a params function:
    a changed setting reruns the jobs it belongs to."""
    return lambda wildcards: settings_json(config, stage, wildcards.get("model"))


def finetune_launcher_config(model):
    """How a model's finetune job starts (not a param: it does not change the adapter)."""
    return config["models"][model]["finetune"]["launcher"]


def source_of(wildcards):
    """The source language of a finetune or merge job (the only one when paths name none)."""
    return wildcards.get("source", SOURCES[0])


def finetune_inputs(wildcards):
    source = source_of(wildcards)
    inputs = {
        "base": paths.BASE_MODEL.format(model=wildcards.model),
        "data": paths.TRAINING.format(source=source),
        "template": language_template(config, source),
    }
    launcher = finetune_launcher_config(wildcards.model)
    if launcher["type"] == "accelerate":
        inputs["accelerate_config"] = launcher["config_file"]
    return inputs


def job_python():
    """The interpreter of every job: the conda environment's (None: found on PATH)
    under --sdm conda, else the one running Snakemake."""
    from snakemake.settings.types import DeploymentMethod

    return None if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method else sys.executable


def xlt_launcher(wildcards, resources):
    """`python -m xlt` with this checkout's src first, the start of every job's command.
    A params function that takes `resources` is one Snakemake does not track for reruns:
    interpreter paths and launchers are how a job runs, not what it computes."""
    return xlt_command(str(Path(workflow.basedir) / "src"), job_python())


def finetune_launcher(wildcards, resources):
    """The launch words of a model's finetune job (see xlt.launch), untracked like
    xlt_launcher: one process per GPU of its resources."""
    launcher = finetune_launcher_config(wildcards.model)
    return finetune_launch(launcher, resources.gpu, str(Path(workflow.basedir) / "src"), job_python())


def stage_resource(stage, key):
    """Per-model resources of the finetune or inference stage, as a rule-level callable."""
    return lambda wildcards: config["models"][wildcards.model][stage]["resources"][key]


def light_resource(key):
    return config["resources"]["light"][key]


def model_source_input(wildcards):
    path = config["models"][wildcards.model].get("path")
    return [path] if path else []


def data_inputs(wildcards=None):
    if config["data"]["source"] == "fixture":
        return [f"{config['data']['fixture_dir']}/{lang}.jsonl" for lang in LANGS]
    return []


def training_inputs(wildcards=None):
    """Belebele's prepared files of the sources (finetune.data: belebele), or the
    sources' local training files (a Hub training set is no input file)."""
    if not EXTERNAL_TRAINING:
        return {"belebele": [paths.DATA.format(lang=source) for source in SOURCES]}
    return {"files": [entry["path"] for entry in config["finetune"]["data"].values() if "path" in entry]}


def belebele_argument(wildcards, input):
    """`--belebele FILE...` (each source's prepared data, in source order) when the
    training examples are Belebele's split; a local training file is named in --settings."""
    return "--belebele " + " ".join(shlex.quote(path) for path in input.belebele) if not EXTERNAL_TRAINING else ""


def predict_inputs(wildcards):
    inputs = {
        "base": paths.BASE_MODEL.format(model=wildcards.model),
        "data": expand(paths.DATA, lang=LANGS),
        "templates": sorted({language_template(config, lang) for lang in LANGS}),
    }
    if wildcards.variant in SOURCE_OF_VARIANT:
        inputs["adapter"] = paths.source_paths(wildcards.model, SOURCE_OF_VARIANT[wildcards.variant], SOURCES)["adapter"]
    return inputs


def adapter_argument(wildcards, input):
    """`--adapter PATH` for the fine-tuned variant's predict jobs, nothing for the base."""
    return f"--adapter {shlex.quote(input.adapter)}" if wildcards.variant in SOURCE_OF_VARIANT else ""


# The order jobs start in when cores are scarce: longest path to the end first. A
# finetune job gates its variant's predict job, so it goes first; a base predict job
# (nothing waits on it but compare, and it is a model's longest: no fine-tuned short
# answers) next; the fine-tuned predict jobs fill in. On the default run (2 cores) it cut
# the time a core sat idle from 207 s to 81 s (docs/measurements.md).
FINETUNE_PRIORITY, BASE_PREDICT_PRIORITY = 2, 1


def predict_priority(wildcards):
    return 0 if wildcards.variant in SOURCE_OF_VARIANT else BASE_PREDICT_PRIORITY


def all_predictions():
    return expand(paths.PREDICTIONS, model=MODELS, variant=VARIANTS, prompt=paths.PROMPTS, lang=LANGS)
