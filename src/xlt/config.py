"""Loading and checking the study configuration.

The workflow (workflow/rules/common.smk) and the `xlt` commands both validate with
`validate_config`: config/schema.yaml with its defaults filled in, then `check_config`,
the rules a JSON Schema cannot state (cross-references between keys). Every mistake
stops with one line naming the key and what is allowed. The workflow also runs
`check_files`: the files a run will read exist, so a typo stops the run before any job.
"""

from __future__ import annotations

import copy
import math
import re
from importlib.resources import files
from pathlib import Path

import yaml

from .errors import XltError
from .languages import fill_language_metadata
from .paths import POOLED_MODEL
from .primary import resolve_primary
from .yamlfile import read_yaml

SCHEMA_PATH = Path(str(files("xlt").joinpath("schema.yaml")))


def load_schema() -> dict:
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _describe(error) -> str:
    """`location: message` of a schema violation, made to say what is allowed where
    jsonschema would not: an unknown key lists the known ones, a name that fails a
    pattern quotes the schema's description of it, alternatives (`oneOf`) say what
    each allows."""
    path = [str(part) for part in error.absolute_path]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        unknown = sorted((key for key in error.instance if key not in known), key=str)
        path, message = path + [str(unknown[0])], f"unknown key; allowed here: {', '.join(known)}"
    elif error.validator == "pattern" and "description" in error.schema:
        message = f"{error.instance!r} is not allowed: {error.schema['description']}"
    elif error.validator == "type" and isinstance(error.instance, float) and not math.isfinite(error.instance):
        message = f"{error.instance!r} is not allowed: a finite number"
    elif error.validator == "minProperties":
        message = f"needs at least {error.validator_value} entries, found {len(error.instance)}"
    elif error.validator == "oneOf" and all(set(option) == {"required"} for option in error.validator_value):
        keys = [option["required"][0] for option in error.validator_value]
        found = [key for key in keys if key in error.instance]
        message = f"give exactly one of {', '.join(keys)} (found {', '.join(found) or 'none'})"
    elif error.validator in ("oneOf", "anyOf") and error.context:
        message = f"{error.instance!r} is not allowed: " + "; or ".join(sorted({sub.message for sub in error.context}))
    else:
        message = error.message
    return f"{'.'.join(path) or '(top level)'}: {message}"


def validate_config(config: dict, source: str = "config") -> dict:
    """Validate against the schema and fill defaults (a language's family and script
    from the metadata xlt ships, where the config leaves them out); returns a new dict."""
    import jsonschema
    from jsonschema import Draft202012Validator, validators

    config = copy.deepcopy(config)
    base = Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    # JSON Schema counts 2000.0 as an integer and NaN as a number that passes every
    # bound: the code after validation needs an int, and a finite number.
    type_checker = base.TYPE_CHECKER.redefine_many(
        {
            "integer": lambda checker, instance: isinstance(instance, int) and not isinstance(instance, bool),
            "number": lambda checker, instance: (
                isinstance(instance, (int, float)) and not isinstance(instance, bool) and math.isfinite(instance)
            ),
        }
    )

    # A pattern's `$` ends the text, as in JSON Schema's regular expressions: Python's
    # re.search would let `$` match before a final line break ("m1\n" a model name).
    def whole_text_pattern(validator, pattern, instance, schema):
        if validator.is_type(instance, "string") and not re.search(re.sub(r"\$$", r"\\Z", pattern), instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")

    validator_class = validators.extend(
        base, {"properties": set_defaults, "pattern": whole_text_pattern}, type_checker=type_checker
    )
    try:
        validator_class(load_schema()).validate(config)
    except jsonschema.ValidationError as error:
        raise XltError(f"{source}: {_describe(error)}") from None
    fill_language_metadata(config["languages"], source)
    check_config(config, source)
    return config


def check_config(config: dict, source: str = "config") -> None:
    """Cross-key rules: each language's script is its code's, the sources are configured
    languages, every related family has a language, there is at least one control,
    training data is given for every source, no model takes a name the tables reserve,
    stats.primary names one test of this study (xlt.primary), templates refer to
    configured files, a GPU type comes with a GPU count. `source_language` becomes the
    one-entry `source_languages`."""
    languages = config["languages"]
    if "source_languages" not in config:
        config["source_languages"] = [config["source_language"]]
    key = "source_language" if "source_language" in config else "source_languages"
    for source_language in config["source_languages"]:
        if source_language not in languages:
            raise XltError(f"{source}: {key}: {source_language!r} is not among languages ({', '.join(languages)})")
    for code, meta in languages.items():
        if meta["script"] != code.split("_")[1]:
            raise XltError(
                f"{source}: languages.{code}.script: {meta['script']!r} is not the script of the code "
                f"{code} ({code.split('_')[1]})"
            )
    families = {meta["family"] for meta in languages.values()}
    for family in config["related_families"]:
        if family not in families:
            raise XltError(
                f"{source}: related_families: no language of family {family!r}; families configured: "
                f"{', '.join(sorted(families))}"
            )
    sources = config["source_languages"]
    related = [
        code for code, meta in languages.items() if meta["family"] in config["related_families"] and code not in sources
    ]
    controls = [
        code
        for code, meta in languages.items()
        if meta["family"] not in config["related_families"] and code not in sources
    ]
    if not related:
        raise XltError(
            f"{source}: related_families: no related target language besides the source(s) {', '.join(sources)}"
        )
    if not controls:
        raise XltError(f"{source}: languages: no control language (every language is in related_families or a source)")
    data = config["finetune"]["data"]
    if isinstance(data, dict):
        for lang in sources:
            if lang not in data:
                raise XltError(
                    f"{source}: finetune.data: no training set for source {lang}; give one for every "
                    f"source ({', '.join(sources)}) or write belebele"
                )
        for lang in data:
            if lang not in sources:
                raise XltError(f"{source}: finetune.data.{lang}: not a source language ({', '.join(sources)})")
    for lang in config["finetune"]["format_control"] if isinstance(config["finetune"]["format_control"], list) else []:
        if lang not in sources:
            raise XltError(
                f"{source}: finetune.format_control: {lang!r} is not a source language "
                f"({', '.join(sources)}); allowed: first, or a list of them"
            )
    if POOLED_MODEL in config["models"]:
        raise XltError(
            f"{source}: models.{POOLED_MODEL}: the name is reserved for the rows estimated from all "
            "models together; name the model otherwise"
        )
    resolve_primary(config, config["stats"]["primary"], _effects_tested, where=f"{source}: stats.primary")
    for model, entry in config["models"].items():
        check_launcher(entry["finetune"], f"{source}: models.{model}.finetune")
        for stage in ("finetune", "inference"):
            resources = entry[stage]["resources"]
            if resources["gpu_model"] and resources["gpu"] < 1:
                raise XltError(
                    f"{source}: models.{model}.{stage}.resources: gpu_model {resources['gpu_model']!r} "
                    f"needs gpu: 1 or more (it is {resources['gpu']})"
                )


def _effects_tested(languages) -> list[tuple[str, str]]:
    """stats.relatedness.effects_tested, imported only where a named primary test is checked: the
    statistics' libraries would slow every plan."""
    from .stats.relatedness import effects_tested

    return effects_tested(languages)


def check_launcher(finetune: dict, where: str) -> None:
    """`accelerate launch` starts one process per GPU, the same number on every node,
    and reads its sharding from a config file; a single process needs none of that."""
    launcher, gpus = finetune["launcher"], finetune["resources"]["gpu"]
    if launcher["type"] == "in_process":
        if launcher["config_file"] is not None:
            raise XltError(f"{where}.launcher.config_file: only read by launcher type 'accelerate', not 'in_process'")
        if launcher["num_machines"] > 1:
            raise XltError(
                f"{where}.launcher.num_machines: {launcher['num_machines']} nodes need launcher type 'accelerate'"
            )
        return
    if launcher["config_file"] is None:
        raise XltError(
            f"{where}.launcher.config_file: required by launcher type 'accelerate' (e.g. "
            "config/accelerate/deepspeed_zero3.yaml)"
        )
    if gpus < 1 or gpus % launcher["num_machines"]:
        raise XltError(
            f"{where}.resources.gpu: launcher type 'accelerate' starts one process per GPU on each of "
            f"{launcher['num_machines']} node(s), so gpu must be a positive multiple of num_machines, not {gpus}"
        )


def check_files(config: dict, source: str = "config") -> None:
    """The files a run reads exist: each language's prompt template (read and checked,
    so a template missing a key stops planning, not a model job), each fixture file,
    each model's local path. Relative paths are taken from the working directory."""
    from .prompts import load_template, template_path

    templates = Path(config["prompts"]["templates"])
    for code, meta in config["languages"].items():
        name = meta.get("template") or code
        if not template_path(templates, name).is_file():
            available = sorted(path.stem for path in templates.glob("*.yaml")) or ["none"]
            raise XltError(
                f"{source}: languages.{code}: no prompt template {template_path(templates, name)}; write "
                f"one, or set template: to one of {', '.join(available)}"
            )
        try:
            load_template(template_path(templates, name))
        except XltError as error:
            raise XltError(f"{source}: languages.{code}: {error}") from None
    if isinstance(config["finetune"]["data"], dict):
        for lang, training_set in config["finetune"]["data"].items():
            if "path" in training_set and not Path(training_set["path"]).is_file():
                raise XltError(
                    f"{source}: finetune.data.{lang}.path: {training_set['path']} does not exist (a "
                    ".jsonl or .parquet file)"
                )
    if config["data"]["source"] == "fixture":
        fixtures = Path(config["data"]["fixture_dir"])
        for code in config["languages"]:
            if not (fixtures / f"{code}.jsonl").is_file():
                raise XltError(f"{source}: data.fixture_dir: {fixtures} has no {code}.jsonl for languages.{code}")
    for name, entry in config["models"].items():
        if entry.get("path") and not Path(entry["path"]).exists():
            raise XltError(
                f"{source}: models.{name}.path: {entry['path']} does not exist (a checkpoint folder or a .gguf file)"
            )


def read_config_file(path: str | Path) -> dict:
    """A config file's settings, before validation. YTE templating (`__use_yte__`), which
    Snakemake would evaluate as Python, is refused: an xlt config is plain YAML."""
    config = read_yaml(path, "config file")
    if not isinstance(config, dict):
        raise XltError(f"{path}: expected a mapping of settings at the top level")
    if "__use_yte__" in config:
        raise XltError(
            f"{path}: __use_yte__: YTE templates are Python code run on loading; xlt configs are plain "
            "YAML (see README, When something goes wrong)"
        )
    return config


def load_config(path: str | Path) -> dict:
    return validate_config(read_config_file(path), source=str(path))
