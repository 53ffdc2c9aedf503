"""Driving Snakemake in the tests: the test config (tiny models, three languages) made
runnable from any folder, the workflow through Snakemake's API in this process, or
through the command line a user types in a fresh one (which imports the code of the
workflow copy it is given, so it sees code changes), and reading its plans and graphs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def run_snakemake(
    repo: Path, workdir: Path, configfile: Path, cores: int = 2, dryrun: bool = False, forcerun: tuple[str, ...] = ()
) -> list[str]:
    """Run (or plan) the workflow; returns the outputs of the jobs it scheduled."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        ExecutionSettings,
        OutputSettings,
        ResourceSettings,
    )

    scheduled: list[str] = []
    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=cores),
            config_settings=ConfigSettings(configfiles=[configfile]),
            snakefile=repo / "Snakefile",
            workdir=workdir,
        )
        dag = workflow.dag(dag_settings=DAGSettings(forcerun=set(forcerun)))
        dag.execute_workflow(
            executor="dryrun" if dryrun else "local", execution_settings=ExecutionSettings(), updated_files=scheduled
        )
    return scheduled


def shipped_study(root: Path) -> Path:
    """`root` holding what the shipped configs name by relative paths (config/ and
    data/), to plan config/config.yaml and config/paper.yaml in: no test plans in the
    checkout itself, where a finished study, a half-run one or a lock would change
    what Snakemake plans, and where planning would leave its .snakemake behind."""
    for folder in ("config", "data"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def tiny_config(model_paths: dict[str, Path]) -> dict:
    """.test/config/config.yaml with its relative paths made absolute, so a run in any
    working directory reads the repository's fixture and templates."""
    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text(encoding="utf-8"))
    config["data"]["fixture_dir"] = str(REPO / config["data"]["fixture_dir"])
    config["prompts"]["templates"] = str(REPO / config["prompts"]["templates"])
    for name, entry in config["models"].items():
        entry["path"] = str(model_paths[name])
    return config


def write_config(config: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def write_test_config(workdir: Path, tiny_models: dict[str, Path]) -> Path:
    """The test config for a run in `workdir`, written there."""
    return write_config(tiny_config(tiny_models), workdir / "config.yaml")


def workflow_rules(workdir: Path, configfile: Path, snakefile: Path = REPO / "Snakefile") -> dict:
    """Rule name -> Snakemake's own Rule object (its directives: conda_env, shellcmd,
    basedir, ...), as Snakemake parses the workflow for this config; nothing runs."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet=True)) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[configfile]),
            snakefile=snakefile,
            workdir=workdir,
        )
        return {rule.name: rule for rule in workflow._workflow.rules}


def cli_command(workdir: Path, configfile: Path, *args: str, snakefile: Path = REPO / "Snakefile") -> list[str]:
    """The command line a user types, with this checkout's Snakefile unless another is
    given (`--configfile` last: it takes every argument up to the next option)."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile),
        "--directory",
        str(workdir),
        *args,
        "--configfile",
        str(configfile),
    ]


def run_cli(
    workdir: Path, configfile: Path, *args: str, snakefile: Path = REPO / "Snakefile", timeout: int = 900
) -> subprocess.CompletedProcess:
    """`snakemake ARGS` in a fresh process, whatever its exit status."""
    return subprocess.run(
        cli_command(workdir, configfile, *args, snakefile=snakefile), capture_output=True, text=True, timeout=timeout
    )


def snakemake_command(snakefile: Path, workdir: Path, configfile: Path, *args: str, timeout: int = 300) -> str:
    """`snakemake ARGS` in a fresh process that must succeed; returns what it printed on stdout."""
    done = run_cli(workdir, configfile, *args, snakefile=snakefile, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(done.args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def planned_rules(snakefile: Path, workdir: Path, configfile: Path) -> Counter:
    """Rule -> number of jobs in the plan of `snakemake -n` (its "Job stats" table)."""
    text = snakemake_command(snakefile, workdir, configfile, "-n")
    counts: Counter = Counter()
    lines = iter(text.splitlines())
    for line in lines:
        if line.strip() == "Job stats:":
            break
    else:
        return counts
    for line in lines:
        fields = line.split()
        if not fields:
            break
        if len(fields) == 2 and fields[1].isdigit() and fields[0] != "total":
            counts[fields[0]] = int(fields[1])
    return counts


def planned_jobs(dry_run_output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, its printed fields: wildcards, resources, priority, ...) for each job of a
    dry run's output, local rules included."""
    parts = re.split(r"^(?:local)?rule (\w+):$", dry_run_output, flags=re.MULTILINE)[1:]
    return [
        (rule, dict(re.findall(r"^ +(\w+): (.*)$", body, flags=re.MULTILINE)))
        for rule, body in zip(parts[0::2], parts[1::2])
    ]


def rule_graph(dot: str) -> set[tuple[str, str]]:
    """(rule, rule it feeds) edges of `snakemake --rulegraph` output."""
    labels = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', dot, re.M))
    return {(labels[a], labels[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M)}


def rule_graph_of_svg(path: Path) -> set[tuple[str, str]]:
    """The same edges, read from Graphviz's SVG drawing of that output."""
    import xml.etree.ElementTree as ElementTree

    svg = "{http://www.w3.org/2000/svg}"
    labels, edges = {}, []
    for group in ElementTree.parse(path).getroot().iter(f"{svg}g"):
        title = group.findtext(f"{svg}title")
        if group.get("class") == "node":
            labels[title] = group.findtext(f"{svg}text")
        elif group.get("class") == "edge":
            edges.append(title.split("->"))
    return {(labels[a], labels[b]) for a, b in edges}
