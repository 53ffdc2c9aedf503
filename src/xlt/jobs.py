"""What each workflow job depends on, built from the validated config in one place.

A job's settings are a param of its rule (so changing one reruns that job and what
follows) and reach its `xlt <stage>` command as `--settings JSON`. They hold what the
job computes from, and nothing about how or where it runs: resources, the fine-tuning
launcher and whether an adapter is also merged are left out, so changing those reruns
nothing. One model's settings are in that model's jobs only.
"""

from __future__ import annotations

from .languages import control_sources
from .paths import CLOZE_PROMPT, CONVERTED_MODEL, JOB_CELLS, STAGED_DATASET, STAGED_MODEL
from .prompts import template_path
from .recipes import recipes
from .settings import (
    AdapterSettings,
    PredictSettings,
    PrepareControlSettings,
    PrepareDataSettings,
    PrepareModelSettings,
    PrepareTrainingSettings,
    ProvenanceSettings,
    ReportSettings,
    StageSettings,
    StudySettings,
)
from .staging import staged_datasets, staged_models, staging_dir, training_name

# The parts of a model's config entry that are not where its weights come from.
STAGE_BLOCKS = ("finetune", "inference")
# What an adapter does not depend on: how the job runs, and what is done after it.
NOT_LEARNED = ("launcher", "resources", "merge")
MODEL_STAGES = ("prepare_model", "finetune", "merge", "predict")
STUDY_STAGES = ("score", "compare", "report", "proximity")
DATA_STAGES = ("prepare_data", "prepare_training", "prepare_control", "provenance")


def model_source(entry: dict) -> dict:
    """A model entry without its stage blocks: where the weights come from and how the
    model is prompted (id/path/package, revision, chat template, trust_remote_code)."""
    return {key: value for key, value in entry.items() if key not in STAGE_BLOCKS}


def study_settings(config: dict) -> dict:
    """What the model-free stages need: a change elsewhere does not rerun them. The
    token budgets are here because scoring reads truncation from them, the cloze
    normalisation because scoring chooses the cloze cell's options with it, the sources
    with a format-only control because the comparison reads their control variants."""
    prompts = {
        key: value
        for key, value in config["prompts"].items()
        if key.endswith("_max_new_tokens") or key == "cloze_normalisation"
    }
    return {
        **{key: config[key] for key in ("languages", "source_languages", "related_families", "stats")},
        "prompts": prompts,
        "finetune": {"format_control": control_sources(config)},
    }


def language_template(config: dict, lang: str) -> str:
    """The prompt template file a language uses (its own, or the one its config names)."""
    name = config["languages"][lang].get("template") or lang
    return str(template_path(config["prompts"]["templates"], name))


def computed_config(config: dict) -> dict:
    """The config less how and where jobs run (resources, launchers, merging): what
    provenance.json hashes, so that moving a run to other machines keeps its hash."""
    models = {}
    for name, entry in config["models"].items():
        models[name] = {**model_source(entry)}
        for block in STAGE_BLOCKS:
            if block in entry:
                models[name][block] = {key: value for key, value in entry[block].items() if key not in NOT_LEARNED}
    return {**{key: value for key, value in config.items() if key != "resources"}, "models": models}


def prompt_settings(config: dict, prompt: str) -> dict:
    """What a prompt's predictions depend on besides the model and templates. The
    cloze prompt generates nothing and scores its options' continuations; how they are
    compared (prompts.cloze_normalisation) is the score stage's, so changing it reruns
    no model."""
    if prompt == CLOZE_PROMPT:
        return {"max_new_tokens": 0, "scoring": "continuations"}
    return {
        "max_new_tokens": config["prompts"][f"{prompt}_max_new_tokens"],
        "scoring": config["prompts"]["direct_scoring"] if prompt == "direct" else "generate",
    }


def stage_settings(config: dict, stage: str, model: str | None = None) -> StageSettings:
    """The settings of one job of `stage` (a rule name); `model` for the model stages."""
    # Staged folders (xlt.staging) are named only where staging applies, so a config
    # without staging.dir keeps the settings (and the jobs) it had.
    datasets = staged_datasets(config)
    if stage == "prepare_data":
        # With external training data (finetune.data) every Belebele item is a test item.
        return PrepareDataSettings(
            data=config["data"],
            langs=list(config["languages"]),
            all_test=isinstance(config["finetune"]["data"], dict),
            staged=STAGED_DATASET.format(staging=staging_dir(config), dataset="belebele")
            if "belebele" in datasets
            else None,
        )
    if stage == "prepare_training":
        # Which sources have a control changes no training example: left out, so that
        # turning it on reruns nothing that exists.
        staged = {
            source: STAGED_DATASET.format(staging=staging_dir(config), dataset=training_name(source))
            for source in config["source_languages"]
            if training_name(source) in datasets
        }
        return PrepareTrainingSettings(
            finetune={key: value for key, value in config["finetune"].items() if key != "format_control"},
            sources=config["source_languages"],
            seed=config["data"]["seed"],
            staged=staged or None,
        )
    if stage == "prepare_control":
        return PrepareControlSettings(seed=config["data"]["seed"])
    if stage == "provenance":
        return ProvenanceSettings(config=computed_config(config))
    if stage == "report":
        return ReportSettings(**study_settings(config), recipes=recipes(config))
    if stage in STUDY_STAGES:
        return StudySettings(**study_settings(config))
    if stage not in MODEL_STAGES:
        raise ValueError(
            f"no job settings for stage {stage!r}; stages: {', '.join(DATA_STAGES + MODEL_STAGES + STUDY_STAGES)}"
        )
    if model not in config["models"]:
        raise ValueError(
            f"no job settings for stage {stage!r} of model {model!r}; models: {', '.join(config['models'])}"
        )
    entry = config["models"][model]
    if stage == "prepare_model":
        staged_model = model in staged_models(config)
        return PrepareModelSettings(
            **{key: entry.get(key) for key in ("id", "revision", "path", "package", "trust_remote_code")},
            staged=STAGED_MODEL.format(staging=staging_dir(config), model=model) if staged_model else None,
            converted=CONVERTED_MODEL.format(staging=staging_dir(config), model=model)
            if staged_model and entry.get("dequantize_fp8")
            else None,
        )
    if stage in ("finetune", "merge"):
        return AdapterSettings(
            source=model_source(entry),
            finetune={key: value for key, value in entry["finetune"].items() if key not in NOT_LEARNED},
        )
    inference = {key: value for key, value in entry["inference"].items() if key != "resources"}
    return PredictSettings(
        model={**model_source(entry), "inference": inference},
        templates={lang: language_template(config, lang) for lang in config["languages"]},
        prompts={prompt: prompt_settings(config, prompt) for prompt in JOB_CELLS},
    )


def job_settings(config: dict, stage: str, model: str | None = None) -> dict:
    """stage_settings as the JSON value of the rule's `settings` param."""
    return stage_settings(config, stage, model).to_dict()


def settings_json(config: dict, stage: str, model: str | None = None) -> str:
    """stage_settings as the JSON of a `--settings` argument, in the config's own order:
    the order of `languages` is the order of the statistics' rows and the report's
    columns (sorting the keys changed effects.csv), and the validated config gives the
    same text every time, so an unchanged job is not rerun."""
    return stage_settings(config, stage, model).to_json()
