"""Nothing untrusted runs: YAML is read with safe_load (xlt.yamlfile.StrictLoader), weights are never unpickled,
remote code stays off unless a model's config turns it on, and names and paths from
the config cannot reach a shell (the schema rejects hostile names, see
test_bad_config.py; a path with spaces and quotes runs as it is)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from faultlib import REPO
from snakemake_runs import run_cli, tiny_config, write_config

CODE = sorted(
    [
        *(REPO / "src").rglob("*.py"),
        *(REPO / "workflow").rglob("*.py"),
        *(REPO / "workflow").rglob("*.smk"),
        REPO / "Snakefile",
        *(REPO / "tests").rglob("*.py"),
    ]
)
THIS_FILE = Path(__file__).resolve()

UNSAFE = {
    "yaml.load without SafeLoader": re.compile(
        r"yaml\.(load|load_all)\((?![^)]*Loader=(yaml\.)?(Safe|Strict)Loader\))|yaml\.(full_load|unsafe_load)\("
    ),
    "a pickle module": re.compile(r"^\s*(import|from)\s+(c?pickle|dill|cloudpickle|joblib)\b", re.MULTILINE),
    "trust_remote_code switched on in code": re.compile(r"trust_remote_code\s*[=:]\s*True"),
}


def _unsafe_uses(text: str) -> list[str]:
    found = [what for what, pattern in UNSAFE.items() if pattern.search(text)]
    for call in re.finditer(r"torch\.load\(", text):
        depth, end = 0, call.end() - 1
        for end in range(call.end() - 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            if depth == 0:
                break
        if not re.search(r"weights_only\s*=\s*True", text[call.start() : end]):
            found.append("torch.load without weights_only=True")
    return found


def test_the_checks_find_what_they_look_for():
    assert _unsafe_uses("config = yaml.load(handle)") == ["yaml.load without SafeLoader"]
    assert _unsafe_uses("import pickle\n") == ["a pickle module"]
    assert _unsafe_uses("state = torch.load(path,\n    map_location='cpu')") == ["torch.load without weights_only=True"]
    assert _unsafe_uses("state = torch.load(path, weights_only=True)") == []
    assert _unsafe_uses("AutoModel.from_pretrained(x, trust_remote_code=True)") == [
        "trust_remote_code switched on in code"
    ]
    assert _unsafe_uses("yaml.safe_load(handle)") == []
    assert _unsafe_uses("yaml.load(handle, Loader=StrictLoader)") == []
    assert _unsafe_uses("yaml.load(handle, Loader=yaml.FullLoader)") == ["yaml.load without SafeLoader"]


def test_the_strict_loader_is_a_safe_loader():
    import yaml

    from xlt.yamlfile import StrictLoader

    assert issubclass(StrictLoader, yaml.SafeLoader)


@pytest.mark.parametrize(
    "path", [path for path in CODE if path.resolve() != THIS_FILE], ids=lambda path: str(path.relative_to(REPO))
)
def test_no_unsafe_loading_in_the_code(path):
    assert _unsafe_uses(path.read_text(encoding="utf-8")) == []


SHELL_PLACEHOLDER = re.compile(r"\{(input|output|params|wildcards|log|resources|config)(\.[^}:]*)?(:[^}]*)?\}")


def _unquoted_shell_placeholders(rules: str) -> list[str]:
    """Placeholders in `shell:` blocks without Snakemake's `:q` quoting."""
    found = []
    for block in re.finditer(r"^\s*shell:\s*\n((?:\s{8,}.*\n?)+)", rules, re.MULTILINE):
        for placeholder in SHELL_PLACEHOLDER.finditer(block.group(1)):
            if placeholder.group(3) != ":q":
                found.append(placeholder.group(0))
    return found


def test_the_shell_check_finds_an_unquoted_placeholder():
    rule = (
        'rule x:\n    output: "a"\n    shell:\n        "xlt finetune --base {input.base:q} --out {output} '
        '{wildcards.model}"\n'
    )
    assert _unquoted_shell_placeholders(rule) == ["{output}", "{wildcards.model}"]


# Command prefixes built word by word with shlex.quote (xlt.launch, tested with hostile
# paths in tests/test_finetune.py), and predict's `--adapter PATH` and prepare_training's
# `--belebele FILE...` (shlex.quote in common.smk): quoting them whole would make them
# one word.
PRE_QUOTED = {"{params.launch}", "{params.xlt}", "{params.adapter}", "{params.belebele}"}


def test_every_shell_placeholder_is_quoted():
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        unquoted = _unquoted_shell_placeholders(path.read_text(encoding="utf-8"))
        assert [placeholder for placeholder in unquoted if placeholder not in PRE_QUOTED] == [], path.name


def test_a_path_with_spaces_and_quotes_runs(tiny_models, tmp_path):
    hostile = tmp_path / """my "tiny" model's dir; $(touch pwned)"""
    shutil.copytree(tiny_models["tiny-dense"], hostile)
    config = tiny_config({"tiny-dense": hostile, "tiny-moe": tiny_models["tiny-moe"]})
    workdir = tmp_path / "run dir 'x'"
    workdir.mkdir()
    configfile = write_config(config, tmp_path / "config.yaml")

    result = run_cli(workdir, configfile, "--cores", "1", "results/models/tiny-dense/base")

    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((workdir / "results" / "models" / "tiny-dense" / "base" / "xlt_model.json").read_text())
    assert {key: manifest[key] for key in ("kind", "path")} == {"kind": "local", "path": str(hostile.resolve())}
    assert len(manifest["sha256"]) == 64  # the folder's hash, for provenance.json
    assert not any(path.name == "pwned" for path in tmp_path.rglob("pwned"))
