import json
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The Snakefile put the workflow's own src/ first on sys.path.
from xlt import paths
from xlt.cluster import RESOURCE_KEYS, model_job_resources, partition
from xlt.config import check_files, read_config_file, validate_config
from xlt.errors import XltError
from xlt.fingerprint import stage_fingerprint
from xlt.jobs import language_template, settings_json
from xlt.languages import control_sources
from xlt.launch import finetune_launch, xlt_command
from xlt.recipes import recipe_warning
from xlt.staging import (
    OFFLINE_ENVIRONMENT,
    check_cluster_config,
    staged_datasets,
    staged_models,
    staging_dir,
    training_name,
)

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


# Hub models staged on this node (staging.dir), then loaded offline by every model job.
STAGING = staging_dir(config)
STAGED_MODELS = staged_models(config)
STAGED_DATASETS = staged_datasets(config)
FP8_MODELS = [name for name in STAGED_MODELS if config["models"][name].get("dequantize_fp8")]
# A run whose jobs go to SLURM (its profile sets the plugin's slurm_* default resources;
# the executor itself is chosen after this file is read) stops here, before anything is
# submitted, where a Hub revision is unpinned or a Hub model would download in a job.
CLUSTER_RUN = any(str(resource).startswith("slurm_") for resource in workflow.resource_settings.default_resources or {})
try:
    if CLUSTER_RUN:
        check_cluster_config(config, CONFIG_SOURCE)
    for name, entry in config["models"].items():
        if entry.get("dequantize_fp8") and name not in STAGED_MODELS:
            raise XltError(
                f"{CONFIG_SOURCE}: models.{name}.dequantize_fp8 converts a staged Hub model; "
                f"give {name} an id and set staging.dir"
            )
except XltError as error:
    raise WorkflowError(str(error)) from None


# One line at planning: models trained differently are a confound of comparing them.
RECIPE_WARNING = recipe_warning(config)
if RECIPE_WARNING:
    print(RECIPE_WARNING, file=sys.stderr)


LANGS = list(config["languages"])
MODELS = list(config["models"])
SOURCES = config["source_languages"]
# Source language -> its fine-tuned variant (ft-<source>)
FT_VARIANTS = paths.finetuned_variants(SOURCES)
SOURCE_OF_VARIANT = {variant: source for source, variant in FT_VARIANTS.items()}
# Source language -> its format-only control variant (ctl-<source>), for the sources
# finetune.format_control names
CONTROLS = control_sources(config)
CONTROL_VARIANTS = paths.control_variants(CONTROLS)
SOURCE_OF_CONTROL = {variant: source for source, variant in CONTROL_VARIANTS.items()}
VARIANTS = paths.study_variants(SOURCES, CONTROLS)
EXTERNAL_TRAINING = isinstance(config["finetune"]["data"], dict)


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
    ] + [
        paths.MERGED.format(model=model, source=source)
        for model in MODELS
        if config["models"][model]["finetune"]["merge"]
        for source in SOURCES
    ]


def job_settings(stage):
    """The `--settings` of a stage's jobs (xlt.jobs.settings_json), as a params function:
    a changed setting reruns the jobs it belongs to."""
    return lambda wildcards: settings_json(config, stage, wildcards.get("model"))


def finetune_launcher_config(model):
    """How a model's finetune job starts (not a param: it does not change the adapter)."""
    return config["models"][model]["finetune"]["launcher"]


def finetune_inputs(training):
    """The input function of a finetune rule whose examples are `training` (a path with
    {source}: the source's examples, or its format-only control's)."""

    def inputs_of(wildcards):
        source = wildcards.source
        inputs = {
            "base": paths.BASE_MODEL.format(model=wildcards.model),
            "data": training.format(source=source),
            "template": language_template(config, source),
        }
        launcher = finetune_launcher_config(wildcards.model)
        if launcher["type"] == "accelerate":
            inputs["accelerate_config"] = launcher["config_file"]
        return inputs

    return inputs_of


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


# Before a model job's command once Hub models are staged: it reads files, never the Hub.
HUB_OFFLINE = OFFLINE_ENVIRONMENT if STAGING else ""


def model_job_launcher(wildcards, resources):
    """xlt_launcher of a job that loads models (untracked likewise), offline once staged."""
    return HUB_OFFLINE + xlt_launcher(wildcards, resources)


def finetune_launcher(wildcards, resources):
    """The launch words of a model's finetune job (see xlt.launch), untracked like
    xlt_launcher: one process per GPU of the model's config (all nodes together; on
    several nodes the job's `gpu` resource is unset, see xlt.cluster), and the config's
    threads per node, as the job's cpus_per_task (Snakemake may cap `threads`); offline
    once staged."""
    entry = config["models"][wildcards.model]["finetune"]
    gpus, threads = entry["resources"]["gpu"], entry["resources"]["threads"]
    return HUB_OFFLINE + finetune_launch(
        finetune_launcher_config(wildcards.model), gpus, threads, str(Path(workflow.basedir) / "src"), job_python()
    )


def stage_resource(stage, key):
    """Per-model resources of the finetune or inference stage, as a rule-level callable."""
    return lambda wildcards: config["models"][wildcards.model][stage]["resources"][key]


def model_job_resources_of(stage):
    """Every resource of a model's finetune or inference jobs (xlt.cluster), each as a
    rule-level callable: resources, not params, so a change reruns nothing."""
    return {
        key: (lambda wildcards, key=key: model_job_resources(config, wildcards.model, stage)[key])
        for key in RESOURCE_KEYS
    }


def light_resource(key):
    return config["resources"]["light"][key]


def model_source_input(wildcards):
    """A local model's file or folder; a staged Hub model's folder, and its bfloat16
    conversion for an FP8 one."""
    path = config["models"][wildcards.model].get("path")
    if path:
        return {"source": path}
    if wildcards.model not in STAGED_MODELS:
        return {}
    inputs = {"staged": paths.STAGED_MODEL.format(staging=STAGING, model=wildcards.model)}
    if wildcards.model in FP8_MODELS:
        inputs["converted"] = paths.CONVERTED_MODEL.format(staging=STAGING, model=wildcards.model)
    return inputs


def data_inputs(wildcards=None):
    """The fixture's files, or Belebele's staged folder (a Hub dataset once staged)."""
    if config["data"]["source"] == "fixture":
        return {"fixture": [f"{config['data']['fixture_dir']}/{lang}.jsonl" for lang in LANGS]}
    if "belebele" in STAGED_DATASETS:
        return {"staged": paths.STAGED_DATASET.format(staging=STAGING, dataset="belebele")}
    return {}


def training_inputs(wildcards=None):
    """Belebele's prepared files of the sources (finetune.data: belebele), or the
    sources' local training files (a Hub training set is no input file)."""
    if not EXTERNAL_TRAINING:
        return {"belebele": [paths.DATA.format(lang=source) for source in SOURCES]}
    staged = [
        paths.STAGED_DATASET.format(staging=STAGING, dataset=training_name(source))
        for source in SOURCES
        if training_name(source) in STAGED_DATASETS
    ]
    return {
        "files": [entry["path"] for entry in config["finetune"]["data"].values() if "path" in entry],
        "staged": staged,
    }


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
        inputs["adapter"] = paths.ADAPTER.format(model=wildcards.model, source=SOURCE_OF_VARIANT[wildcards.variant])
    if wildcards.variant in SOURCE_OF_CONTROL:
        inputs["adapter"] = paths.CONTROL_ADAPTER.format(
            model=wildcards.model, source=SOURCE_OF_CONTROL[wildcards.variant]
        )
    return inputs


def adapter_argument(wildcards, input):
    """`--adapter PATH` for the fine-tuned and control variants' predict jobs, nothing for the base."""
    return f"--adapter {shlex.quote(input.adapter)}" if wildcards.variant != "base" else ""


# The order jobs start in when cores are scarce: longest path to the end first. A
# finetune job gates its variant's predict job, so it goes first; a base predict job
# (nothing waits on it but compare, and it is a model's longest: no fine-tuned short
# answers) next; the fine-tuned predict jobs fill in. On the default run (2 cores) it cut
# the time a core sat idle from 207 s to 81 s (docs/measurements.md).
FINETUNE_PRIORITY, BASE_PREDICT_PRIORITY = 2, 1


def predict_environment(wildcards):
    """A predict job's conda environment: vLLM's own for a model it serves (vLLM pins
    its own torch and transformers), else the model jobs' one."""
    backend = config["models"][wildcards.model]["inference"]["backend"]
    return "../../envs/vllm.yaml" if backend == "vllm" else "../../envs/models.yaml"


def predict_priority(wildcards):
    return BASE_PREDICT_PRIORITY if wildcards.variant == "base" else 0


def all_predictions():
    return expand(paths.PREDICTIONS, model=MODELS, variant=VARIANTS, prompt=paths.PROMPTS, lang=LANGS)
