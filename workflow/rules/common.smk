import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The workflow's own src/ first, so it runs the same code whether or not xlt is
# installed in the environment that runs Snakemake (or a job's conda environment).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from xlt import paths
from xlt.config import check_files, read_config_file, validate_config
from xlt.errors import XltError
from xlt.fingerprint import stage_fingerprint
from xlt.jobs import language_template, settings_json
from xlt.launch import finetune_launch, xlt_command

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


def job_settings(stage):
    """The `--settings` of a stage's jobs (xlt.jobs.job_settings), as a params function:
    a changed setting reruns the jobs it belongs to."""
    return lambda wildcards: settings_json(config, stage, wildcards.get("model"), wildcards.get("prompt"))


def finetune_launcher_config(model):
    """How a model's finetune job starts (not a param: it does not change the adapter)."""
    return config["models"][model]["finetune"]["launcher"]


def finetune_inputs(wildcards):
    inputs = {
        "base": paths.BASE_MODEL.format(model=wildcards.model),
        "data": paths.DATA.format(lang=SOURCE),
        "template": language_template(config, SOURCE),
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


def predict_inputs(wildcards):
    inputs = {
        "base": paths.BASE_MODEL.format(model=wildcards.model),
        "data": expand(paths.DATA, lang=LANGS),
        "templates": sorted({language_template(config, lang) for lang in LANGS}),
    }
    if wildcards.variant == "ft":
        inputs["adapter"] = paths.ADAPTER.format(model=wildcards.model)
    return inputs


def predict_params(prompt):
    """The params of a predict job of `prompt` (its cells: paths.JOB_CELLS): its settings
    and code hash, which it depends on, and the words of its command line."""
    return {
        "prompt": prompt,
        "settings": lambda wildcards: settings_json(config, "predict", wildcards.model, prompt),
        # The engine's and the prompts' code (xlt.fingerprint): a change reruns inference.
        "code": stage_fingerprint("predict"),
        "xlt": xlt_launcher,
        "adapter": adapter_argument,
    }


def adapter_argument(wildcards, input):
    """`--adapter PATH` for the fine-tuned variant's predict jobs, nothing for the base."""
    return f"--adapter {shlex.quote(input.adapter)}" if wildcards.variant == "ft" else ""


def all_predictions():
    return expand(paths.PREDICTIONS, model=MODELS, variant=paths.VARIANTS, prompt=paths.PROMPTS, lang=LANGS)
