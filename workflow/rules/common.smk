import json
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The workflow's own src/ first, so it runs the same code whether or not xlt is
# installed in the environment that runs Snakemake (or a job's conda environment).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from xlt import paths
from xlt.config import check_files, read_config_file, validate_config
from xlt.errors import XltError
from xlt.extract import fingerprint as extractor_fingerprint
from xlt.inference import fingerprint as inference_fingerprint
from xlt.launch import finetune_launch, xlt_command
from xlt.prompts import template_path

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


LANGS = list(config["languages"])
MODELS = list(config["models"])
SOURCE = config["source_language"]


wildcard_constraints:
    model="|".join(re.escape(m) for m in MODELS),
    variant="|".join(paths.VARIANTS),
    prompt="|".join(paths.PROMPTS),
    lang="|".join(re.escape(l) for l in LANGS),


def all_outputs():
    return [
        paths.ACCURACY,
        paths.EFFECTS,
        paths.ALIGNMENT,
        paths.GAINS,
        f"{paths.REPORT}/{paths.REPORT_SUMMARY}",
    ] + [paths.MERGED.format(model=model) for model in MODELS if config["models"][model]["finetune"]["merge"]]


def study_config():
    """What the model-free stages need: a change elsewhere does not rerun them."""
    return {key: config[key] for key in ("languages", "source_language", "related_families", "stats")}


def template_file(lang):
    """The prompt template a language uses (its own, or the one its config names)."""
    name = config["languages"][lang].get("template") or lang
    return str(template_path(config["prompts"]["templates"], name))


def model_entry(model, stages=("finetune", "inference")):
    """A model's settings for jobs of `stages`, less resources: a params value, so
    changing resources, or another stage's settings, reruns nothing."""
    entry = config["models"][model]
    return {
        **{key: value for key, value in entry.items() if key not in ("finetune", "inference")},
        **{stage: {k: v for k, v in entry[stage].items() if k != "resources"} for stage in stages},
    }


def finetune_settings(model):
    """What a model's adapter depends on, as JSON: its source and finetune settings, not
    how or where the job runs (launcher, resources) nor whether it is merged after."""
    entry = config["models"][model]
    finetune = {key: value for key, value in entry["finetune"].items() if key not in ("launcher", "resources", "merge")}
    source = {key: value for key, value in entry.items() if key not in ("finetune", "inference")}
    return json.dumps({**source, "finetune": finetune}, sort_keys=True)


def finetune_launcher_setting(model, key):
    return config["models"][model]["finetune"]["launcher"][key]


def finetune_inputs(wildcards):
    inputs = {
        "base": paths.BASE_MODEL.format(model=wildcards.model),
        "data": paths.DATA.format(lang=SOURCE),
        "template": template_file(SOURCE),
    }
    if finetune_launcher_setting(wildcards.model, "type") == "accelerate":
        inputs["accelerate_config"] = finetune_launcher_setting(wildcards.model, "config_file")
    return inputs


def job_python():
    """The interpreter of model jobs: the conda environment's (None: found on PATH)
    under --sdm conda, else the one running Snakemake."""
    from snakemake.settings.types import DeploymentMethod

    return None if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method else sys.executable


def xlt_launcher(wildcards, resources):
    """`python -m xlt` for a model job. A params function that takes `resources` is
    one Snakemake does not track for reruns: interpreter paths and launchers are how a
    job runs, not what it computes."""
    return xlt_command(str(Path(workflow.basedir) / "src"), job_python())


def finetune_launcher(wildcards, resources):
    """The launch words of a model's finetune job (see xlt.launch), untracked like
    xlt_launcher: one process per GPU of its resources."""
    launcher = config["models"][wildcards.model]["finetune"]["launcher"]
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


def predict_inputs(wildcards):
    inputs = {
        "base": paths.BASE_MODEL.format(model=wildcards.model),
        "data": expand(paths.DATA, lang=LANGS),
        "templates": sorted({template_file(lang) for lang in LANGS}),
    }
    if wildcards.variant == "ft":
        inputs["adapter"] = paths.ADAPTER.format(model=wildcards.model)
    return inputs


def predict_params(prompt):
    """The settings a predict job of `prompt` depends on (its cells: paths.JOB_CELLS)."""
    return {
        "prompt": prompt,
        "entry": lambda wildcards: model_entry(wildcards.model, stages=("inference",)),
        "template_files": {lang: template_file(lang) for lang in LANGS},
        "max_new_tokens": config["prompts"][f"{prompt}_max_new_tokens"],
        "scoring": config["prompts"]["direct_scoring"] if prompt == "direct" else "generate",
        # A changed engine or prompt code reruns inference (Snakemake tracks the
        # script, not the modules it imports).
        "engine": inference_fingerprint(),
    }


def all_predictions():
    return expand(paths.PREDICTIONS, model=MODELS, variant=paths.VARIANTS, prompt=paths.PROMPTS, lang=LANGS)
