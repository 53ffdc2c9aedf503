"""The workflow on the test config (tiny models, three languages) in a temporary folder:
through Snakemake's API in this process, or through its command line in a fresh one
(which imports the code of the workflow copy it is given, so it sees code changes)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml


def run_snakemake(repo: Path, workdir: Path, configfile: Path, cores: int = 2, dryrun: bool = False, forcerun: tuple[str, ...] = ()) -> list[str]:
    """Run (or plan) the workflow; returns the outputs of the jobs it scheduled."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, ExecutionSettings, OutputSettings, ResourceSettings

    scheduled: list[str] = []
    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=cores),
            config_settings=ConfigSettings(configfiles=[configfile]),
            snakefile=repo / "Snakefile",
            workdir=workdir,
        )
        dag = workflow.dag(dag_settings=DAGSettings(forcerun=set(forcerun)))
        dag.execute_workflow(executor="dryrun" if dryrun else "local", execution_settings=ExecutionSettings(), updated_files=scheduled)
    return scheduled


def write_test_config(repo: Path, workdir: Path, tiny_models: dict[str, Path]) -> Path:
    """The repo's .test config with its relative paths made absolute for `workdir`."""
    config = yaml.safe_load((repo / ".test" / "config" / "config.yaml").read_text())
    config["data"]["fixture_dir"] = str(repo / config["data"]["fixture_dir"])
    config["prompts"]["templates"] = str(repo / config["prompts"]["templates"])
    for name, entry in config["models"].items():
        entry["path"] = str(tiny_models[name])
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake_command(snakefile: Path, workdir: Path, configfile: Path, *args: str, timeout: int = 300) -> str:
    """`snakemake ARGS` in a fresh process; returns what it printed on stdout."""
    command = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir), "--configfile", str(configfile), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
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
