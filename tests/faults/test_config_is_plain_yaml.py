"""A config is plain YAML: no YTE templating, no tags (Python objects), no anchors or
aliases (alias bombs), no duplicate keys. `xlt` refuses them when it reads a config;
the workflow reads each --configfile again the same way and stops before any job.

The default config (config/config.yaml, no --configfile) is read this way before
Snakemake's `configfile:` loads it, so its YTE never runs. What remains (Snakemake's,
not xlt's): Snakemake loads --configfile through YTE before the Snakefile runs, so such
a config with `__use_yte__: true` has run its expressions by the time xlt refuses it.
A config file is code, like the Snakefile."""

from __future__ import annotations

import subprocess
import sys

import pytest
from faultlib import REPO, files_under
from snakemake_runs import run_cli, tiny_config, write_config

from xlt.config import check_files, load_config, validate_config
from xlt.errors import XltError

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)
)

# (YAML added to a valid config, the message after "<config file>: ")
CASES = {
    "YTE": (
        '__use_yte__: true\nextra: ?__import__("os").system("touch {marker}")\n',
        "__use_yte__: YTE templates are Python code run on loading; xlt configs are plain YAML (see "
        "README, When something goes wrong)",
    ),
    "Python tag": (
        "pwn: !!python/name:os.system\n",
        "tag !!python/name:os.system: tags are not allowed (no Python objects); write plain values",
    ),
    "any tag": (
        "pwn: !!binary aGVsbG8=\n",
        "tag !!binary: tags are not allowed (no Python objects); write plain values",
    ),
    "key that is not text": ("on: 1\n", "key 'on' is read as bool, not text; quote it"),
    "duplicate key": ("source_language: heb_Hebr\n", "key 'source_language' appears twice in one mapping"),
    "alias bomb": (
        "bomb:\n" + "".join("  " + line + "\n" for line in BOMB.splitlines()),
        "anchor &a: anchors and aliases are not allowed; write the value out",
    ),
}


def _config_text(tmp_path, case) -> tuple[str, int]:
    models = {name: tmp_path / "models" / name for name in ("tiny-dense", "tiny-moe")}
    for folder in models.values():
        folder.mkdir(parents=True, exist_ok=True)
    text = write_config(tiny_config(models), tmp_path / "base.yaml").read_text(encoding="utf-8")
    added, _ = CASES[case]
    return text + added.replace("{marker}", str(tmp_path / "PWNED")), text.count("\n") + 1


@pytest.mark.parametrize(
    "added, message",
    [
        (
            "deep: " + "[" * 100_000 + "]" * 100_000 + "\n",
            "not valid YAML for xlt: nested too deeply to read (settings need a few levels)",
        ),
        (
            "big: " + "9" * 5000 + "\n",
            "not valid YAML: Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits",
        ),
    ],
    ids=["nested too deeply", "integer of 5000 digits"],
)
def test_yaml_python_cannot_build_is_one_line(tmp_path, added, message):
    configfile = tmp_path / "my.yaml"
    configfile.write_text("stats: {seed: 1}\n" + added, encoding="utf-8")
    with pytest.raises(XltError) as error:
        load_config(configfile)
    assert str(error.value) == f"{configfile}: {message}"


@pytest.mark.parametrize("case", CASES)
def test_xlt_refuses_it(tmp_path, case):
    text, line = _config_text(tmp_path, case)
    configfile = tmp_path / "my.yaml"
    configfile.write_text(text, encoding="utf-8")
    with pytest.raises(XltError) as error:
        load_config(configfile)
    message = CASES[case][1]
    assert str(error.value) in (
        f"{configfile}: {message}",
        f"{configfile}: line {line}: {message}",
        f"{configfile}: line {line + 1}: {message}",
    )
    assert not (tmp_path / "PWNED").exists()


ON_THE_COMMAND_LINE = {"YTE", "Python tag"}


@pytest.mark.parametrize(
    "case", [case if case in ON_THE_COMMAND_LINE else pytest.param(case, marks=pytest.mark.slow) for case in CASES]
)
@pytest.mark.plans
def test_snakemake_stops_before_any_job(tmp_path, case):
    text, _ = _config_text(tmp_path, case)
    configfile = tmp_path / "my config.yaml"
    configfile.write_text(text, encoding="utf-8")
    workdir = tmp_path / "run"
    workdir.mkdir()

    result = run_cli(workdir, configfile, "-n")

    shown = result.stdout + result.stderr
    assert result.returncode != 0
    assert any(line.startswith(f"{configfile}: ") and line.endswith(CASES[case][1]) for line in shown.splitlines()), (
        shown[-2000:]
    )
    assert "Traceback" not in shown
    assert files_under(workdir / "results") == []
    # Snakemake evaluated the YTE expression when it loaded the file, before xlt could
    # refuse it: what the README says remains.
    assert (tmp_path / "PWNED").exists() == (case == "YTE")


@pytest.mark.parametrize("case", ["YTE", "Python tag"])
def test_the_default_config_is_refused_before_snakemake_loads_it(tmp_path, case):
    text, _ = _config_text(tmp_path, case)
    workdir = tmp_path / "run"
    (workdir / "config").mkdir(parents=True)
    (workdir / "config" / "config.yaml").write_text(text, encoding="utf-8")

    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "-n"],
        capture_output=True,
        text=True,
        timeout=900,
    )

    shown = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"config/config.yaml: line {text.count(chr(10))}: {CASES[case][1]}" in shown.splitlines() or (
        f"config/config.yaml: {CASES[case][1]}" in shown.splitlines()
    ), shown[-2000:]
    assert "Traceback" not in shown
    assert not (tmp_path / "PWNED").exists()
    assert files_under(workdir / "results") == []


def test_a_template_missing_a_key_stops_planning(tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    for template in (REPO / "config" / "templates").glob("*.yaml"):
        (templates / template.name).write_text(template.read_text(encoding="utf-8"), encoding="utf-8")
    broken = templates / "heb_Hebr.yaml"
    broken.write_text(
        "".join(
            line + "\n" for line in broken.read_text(encoding="utf-8").splitlines() if not line.startswith("cot_start")
        ),
        encoding="utf-8",
    )
    models = {name: tmp_path / "models" / name for name in ("tiny-dense", "tiny-moe")}
    for folder in models.values():
        folder.mkdir(parents=True)
    config = tiny_config(models)
    config["prompts"]["templates"] = str(templates)
    with pytest.raises(XltError) as error:
        check_files(validate_config(config, source="my.yaml"), source="my.yaml")
    assert str(error.value) == (
        f"my.yaml: languages.heb_Hebr: {broken}: key cot_start is missing or empty; a template needs "
        "passage, question, answer, direct, cot, cot_start"
    )
