"""Loading and checking the study configuration.

The workflow validates with `snakemake.utils.validate` against config/schema.yaml; the
`xlt` commands validate the same schema here. Both then run `check_config`, which holds
the rules a JSON Schema cannot state (cross-references between keys).
"""

from __future__ import annotations

import copy
from importlib.resources import files
from pathlib import Path

import yaml

from .errors import XltError

SCHEMA_PATH = Path(str(files("xlt").joinpath("schema.yaml")))


def load_schema() -> dict:
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _error_location(error) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def _error_message(error) -> str:
    """jsonschema's message, or for a value that fits none of several alternatives
    (`oneOf`), what each alternative allows."""
    if error.validator in ("oneOf", "anyOf") and error.context:
        return f"{error.instance!r} is not allowed: " + "; or ".join(sorted({sub.message for sub in error.context}))
    return error.message


def validate_config(config: dict, source: str = "config") -> dict:
    """Validate against the schema and fill defaults; returns a new dict."""
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

    validator_class = validators.extend(base, {"properties": set_defaults})
    try:
        validator_class(load_schema()).validate(config)
    except jsonschema.ValidationError as error:
        raise XltError(f"{source}: {_error_location(error)}: {_error_message(error)}") from None
    check_config(config, source)
    return config


def check_config(config: dict, source: str = "config") -> None:
    """Cross-key rules: the source is a configured language, every related family has a
    language, there is at least one control, templates refer to configured files."""
    languages = config["languages"]
    source_language = config["source_language"]
    if source_language not in languages:
        raise XltError(
            f"{source}: source_language: {source_language!r} is not among languages ({', '.join(languages)})"
        )
    families = {meta["family"] for meta in languages.values()}
    for family in config["related_families"]:
        if family not in families:
            raise XltError(
                f"{source}: related_families: no language of family {family!r}; families configured: {', '.join(sorted(families))}"
            )
    related = [code for code, meta in languages.items() if meta["family"] in config["related_families"] and code != source_language]
    controls = [code for code, meta in languages.items() if meta["family"] not in config["related_families"]]
    if not related:
        raise XltError(f"{source}: related_families: no related target language besides the source {source_language}")
    if not controls:
        raise XltError(f"{source}: languages: no control language (every language is in related_families)")
    for name, entry in config["models"].items():
        check_launcher(entry["finetune"], f"{source}: models.{name}.finetune")


def check_launcher(finetune: dict, where: str) -> None:
    """`accelerate launch` starts one process per GPU, the same number on every node,
    and reads its sharding from a config file; a single process needs none of that."""
    launcher, gpus = finetune["launcher"], finetune["resources"]["gpu"]
    if launcher["type"] == "in_process":
        if launcher["config_file"] is not None:
            raise XltError(f"{where}.launcher.config_file: only read by launcher type 'accelerate', not 'in_process'")
        if launcher["num_machines"] > 1:
            raise XltError(f"{where}.launcher.num_machines: {launcher['num_machines']} nodes need launcher type 'accelerate'")
        return
    if launcher["config_file"] is None:
        raise XltError(f"{where}.launcher.config_file: required by launcher type 'accelerate' (e.g. config/accelerate/deepspeed_zero3.yaml)")
    if gpus < 1 or gpus % launcher["num_machines"]:
        raise XltError(
            f"{where}.resources.gpu: launcher type 'accelerate' starts one process per GPU on each of "
            f"{launcher['num_machines']} node(s), so gpu must be a positive multiple of num_machines, not {gpus}"
        )


def read_yaml(path: str | Path, what: str):
    """A YAML file's content (safe_load: no Python objects), or one line saying why not."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        raise XltError(f"{path}: {what} not found") from None
    except yaml.YAMLError as error:
        raise XltError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None


def load_config(path: str | Path) -> dict:
    config = read_yaml(path, "config file")
    if not isinstance(config, dict):
        raise XltError(f"{path}: expected a mapping of settings at the top level")
    return validate_config(config, source=str(path))
