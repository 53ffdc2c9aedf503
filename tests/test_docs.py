"""The documentation pages say what the code and CI do: config/README.md is the schema,
the README's test command is the one CI runs, and every page, path, function and config
key the pages name exists."""

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import yaml

import xlt
from xlt import schema_doc
from xlt.config import load_schema

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONFIG_README = (ROOT / "config" / "README.md").read_text(encoding="utf-8")


def test_config_readme_key_table_is_the_schema():
    """Regenerate with `python -m xlt.schema_doc --write config/README.md`."""
    start, end = CONFIG_README.index(schema_doc.BEGIN), CONFIG_README.index(schema_doc.END) + len(schema_doc.END)
    assert CONFIG_README[start:end] == schema_doc.render(load_schema())


def test_every_schema_key_and_description_is_in_config_readme():
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text(encoding="utf-8"))
    rows = schema_doc.key_rows(schema)
    keys = {key for key, *_ in rows}
    for section in schema["properties"]:
        assert section in keys
    for name in ("learning_rate", "batch_size", "equivalence_margin", "gpu_model", "direct_scoring"):
        assert any(key.endswith(f".{name}") for key in keys), name
    table = {
        line.split("|")[1].strip().strip("`"): line for line in CONFIG_README.splitlines() if line.startswith("| `")
    }
    for key, _, _, description in rows:
        assert key in table, f"config/README.md has no row for {key}"
        assert schema_doc._cell(description) in table[key], f"{key}: description differs from the schema's"


def test_readme_is_a_newcomers_page():
    assert len(README.splitlines()) <= 300
    for heading in (
        "## Quick start",
        "## What it produces",
        "### How to read the results",
        "## Running at scale",
        "## When something goes wrong",
        "## Layout",
    ):
        assert heading in README


def test_readme_test_command_is_the_one_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv") and "pytest" in line)
    assert command in README


def test_snakefile_asks_for_the_snakemake_that_pyproject_installs():
    """The rules use what first came in pyproject's floor (a callable `priority`: 9.17)."""
    floor = re.search(r'"snakemake\[reports\]>=([\d.]+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8")).group(
        1
    )
    assert f'min_version("{floor}")' in (ROOT / "Snakefile").read_text(encoding="utf-8")


def test_readme_and_docs_links_resolve():
    for page in [ROOT / "README.md", ROOT / "config" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


PAGES = [ROOT / "README.md", ROOT / "config" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A path a page names in backquotes: from the checkout's root, or a module under src/xlt/.
REPO_PATH = re.compile(r"(?:src|tests|docs|bench|tools|config|workflow|profiles|envs|data|\.ci)/[\w./-]*[\w/]")
MODULE_PATH = re.compile(r"(?:[a-z_]+/)?[a-z_]+\.py")
# A file name such as `config.json`, not a module's attribute.
FILE_SUFFIXES = {
    "json",
    "jsonl",
    "yaml",
    "yml",
    "md",
    "csv",
    "txt",
    "parquet",
    "safetensors",
    "gguf",
    "html",
    "log",
    "toml",
    "svg",
    "png",
    "py",
}
# `module.attribute` or `xlt.module.attribute`, optionally called with argument names.
DOTTED = re.compile(r"((?:xlt\.)?[a-z_]\w*(?:\.\w+)+)(?:\((.*)\))?")


# A file of the checkout's code a page names anywhere in its text (user files such as
# data/x.jsonl in examples are not checked).
CODE_FILE = re.compile(r"(?<![\w/.-])(?:src|tests|bench|tools|docs|workflow|\.ci)/[\w./-]*\.[A-Za-z]+")


def _spans(page: Path) -> list[str]:
    return [span.strip() for span in re.findall(r"`([^`\n]+)`", page.read_text(encoding="utf-8"))]


def _schema_has(schema: dict, parts: list[str]) -> bool:
    """Whether `parts` is a key path of the schema: from the top, or inside a model's block
    (the pages write `finetune.merge` for `models.<name>.finetune.merge`)."""

    def resolve(node: dict) -> dict:
        while "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[-1]]
        return node

    def has(node: dict, path: list[str]) -> bool:
        for part in path:
            node = resolve(node)
            properties = node.get("properties", {})
            if part in properties:
                node = properties[part]
            elif isinstance(node.get("additionalProperties"), dict):
                node = node["additionalProperties"]
            else:
                return False
        return True

    return has(schema, parts) or has(schema["definitions"]["model"], parts)


def _named_object(parts: list[str], modules: set[str]):
    """The object `parts` name under xlt (a module, then attributes), or the part that is missing."""
    cut = max(cut for cut in range(1, len(parts) + 1) if ".".join(parts[:cut]) in modules)
    name = ".".join(parts[:cut])
    target = importlib.import_module(name)
    for attribute in parts[cut:]:
        if not hasattr(target, attribute):
            return None, f"{name} has no {attribute}"
        target = getattr(target, attribute)
    return target, None


def test_every_path_module_function_and_config_key_the_docs_name_exists():
    """Backquoted paths exist, `xlt.module.function(arguments)` names a function that takes
    those arguments, and `section.key` names a key of config/schema.yaml."""
    schema = load_schema()
    full_names = sorted(
        (info.name for info in pkgutil.walk_packages(xlt.__path__, "xlt.")), key=lambda name: -name.count(".")
    )
    # A short name (`proximity`) is the shallowest module of that name (xlt.proximity, not
    # xlt.stats.proximity); the deeper ones are named in full.
    modules = {name.rsplit(".", 1)[-1]: name for name in full_names}
    stale = []
    for page in PAGES:
        stale += [
            f"{page.relative_to(ROOT)}: {path} does not exist"
            for path in CODE_FILE.findall(page.read_text(encoding="utf-8"))
            if not (ROOT / path).exists()
        ]
        for span in _spans(page):
            where = f"{page.relative_to(ROOT)}: `{span}`"
            path = span.split("::")[0]
            if REPO_PATH.fullmatch(path):
                if not (ROOT / path).exists():
                    stale.append(f"{where} does not exist")
                continue
            if MODULE_PATH.fullmatch(path):
                if not any((ROOT / "src" / "xlt" / folder / path).exists() for folder in ("", "inference")):
                    stale.append(f"{where} is no module of src/xlt")
                continue
            match = DOTTED.fullmatch(span)
            if match is None:
                continue
            dotted, arguments = match.groups()
            parts = dotted.split(".")
            if parts[-1] in FILE_SUFFIXES:
                continue
            is_key = parts[0] in schema["properties"] or parts[0] in schema["definitions"]["model"]["properties"]
            if is_key and _schema_has(schema, parts):
                continue
            if parts[0] != "xlt" and parts[0] not in modules:
                if is_key:
                    stale.append(f"{where} is no key of config/schema.yaml")
                continue
            if parts[0] != "xlt":
                parts = modules[parts[0]].split(".") + parts[1:]
            # `prompts.x` may name a config key or the prompts module: either will do.
            target, missing = _named_object(parts, {"xlt", *full_names})
            if missing:
                stale.append(f"{where}: {missing}" + (" (nor a key of config/schema.yaml)" if is_key else ""))
            elif arguments and callable(target):
                parameters = inspect.signature(target).parameters
                for argument in (piece.split("=")[0].strip() for piece in arguments.split(",")):
                    if re.fullmatch(r"[a-z_]\w*", argument) and argument not in parameters:
                        stale.append(f"{where}: {dotted} takes no argument {argument}")
    assert not stale, "\n".join(stale)
