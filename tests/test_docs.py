"""The documentation pages say what the code and CI do: config/README.md is the schema,
the README's test command is the one CI runs, and every page the README links exists."""

import re
from pathlib import Path

import yaml

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
    table = {line.split("|")[1].strip().strip("`"): line for line in CONFIG_README.splitlines() if line.startswith("| `")}
    for key, _, _, description in rows:
        assert key in table, f"config/README.md has no row for {key}"
        assert schema_doc._cell(description) in table[key], f"{key}: description differs from the schema's"


def test_readme_is_a_newcomers_page():
    assert len(README.splitlines()) <= 300
    for heading in ("## Quick start", "## What it produces", "### How to read the results", "## Running at scale", "## When something goes wrong", "## Layout"):
        assert heading in README


def test_readme_test_command_is_the_one_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv") and "pytest" in line)
    assert command in README


def test_readme_and_docs_links_resolve():
    for page in [ROOT / "README.md", ROOT / "config" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"
