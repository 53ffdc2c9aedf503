"""The hash of a stage's own code: a param of its rule, so that editing the code a stage
runs reruns that stage (and what follows) and nothing else.

Snakemake reruns a job when its params change, but it does not look at the Python a
shell command imports. So every rule has a `code` param, `stage_fingerprint(stage)`:
the source of the stage's function in stages.py (and of the helpers there it calls),
and of every xlt module it imports, followed transitively through each module's
imports (anywhere in the file, a function's local imports included). Editing the statistics
changes the fingerprint of `compare` only; editing finetune.py that of `finetune` and
`merge`; editing the inference engine that of `predict`.

The answer extractor (extract.py) is left out of the model stages on purpose: it
decides when a generated row stops, but a changed extractor reruns `score` (which
re-extracts every stored raw output), not every model. `prepare_training` imports it
only through the prompts' option letters and never extracts.

What is hashed is each module's syntax tree, not its bytes: comments, docstrings,
blank lines, line breaks and quoting cannot change a result, so editing them reruns
nothing (a comment edit must never cost the paper study GPU-days). The tree is written
out by `_canonical` rather than `ast.dump`, whose text changed in Python 3.13 (it leaves
out empty fields), so that a newer Python alone does not change every fingerprint
where the parser gives the same tree.

A refactor changes syntax trees without changing a result. Where a maintainer has run
the default study before and after one and found every output the same byte for byte,
`python -m xlt.fingerprint record --before REV` writes the stages whose code changed
into data/equivalent_code.csv: each new code hash is then read as the hash the stage had
at REV, so a tree built before the refactor (the paper's GPU-days included) is not
rerun by it. The table is data, not code: recording an equivalence changes no
fingerprint itself.
"""

from __future__ import annotations

import argparse
import ast
import csv
import datetime
import functools
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .atomic import write_text

PACKAGE = "xlt"
ROOT = Path(__file__).resolve().parent
EQUIVALENCES = "data/equivalent_code.csv"
EQUIVALENCE_COLUMNS = ("stage", "code", "same_as", "recorded", "evidence")
LEFT_OUT = {stage: {"xlt.extract"} for stage in ("prepare_model", "prepare_training", "finetune", "merge", "predict")}


def _file(module: str) -> Path | None:
    """The source file of an xlt module or package, None if there is none."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    path = ROOT.joinpath(*parts[1:])
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if len(parts) > 1 and path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def _source(module: str) -> str:
    """The source text of an xlt module that has a file (as every one _imports finds)."""
    path = _file(module)
    if path is None:
        raise KeyError(f"{module}: no source file under {ROOT}")
    return path.read_text(encoding="utf-8")


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module an ImportFrom names, with its dots resolved against `module`."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(nodes, module: str, names_used: set[str] | None = None) -> set[str]:
    """xlt modules imported by the import statements among `nodes`. With `names_used`,
    an import counts only if one of the names it binds is among them."""
    source = _file(module)
    is_package = source is not None and source.name == "__init__.py"
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {
                alias.name
                for alias in node.names
                if names_used is None or (alias.asname or alias.name).split(".")[0] in names_used
            }
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            for alias in node.names:
                if names_used is not None and (alias.asname or alias.name) not in names_used:
                    continue
                submodule = f"{target}.{alias.name}"
                found.add(submodule if _file(submodule) else target)
    return {name for name in found if name.split(".")[0] == PACKAGE and _file(name)}


@functools.cache
def _parse(source: str) -> ast.Module:
    """The syntax tree of a source text. Cached by the text itself: the workflow asks for
    every stage's fingerprint at each parse, and most stages share most modules."""
    return ast.parse(source)


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _canonical(node) -> str:
    """The syntax tree below `node` as text, without docstrings, positions or empty
    fields: the same for two sources that differ only in comments, docstrings or
    formatting. A docstring is a bare string as the first statement of a module, class
    or function; Python keeps it as `__doc__` and runs nothing for it."""
    if isinstance(node, list):
        return "[" + ",".join(_canonical(item) for item in node) + "]"
    if not isinstance(node, ast.AST):
        return repr(node)
    fields = []
    for name in node._fields:
        value = getattr(node, name, None)
        if (
            name == "body"
            and isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and value
            and _is_docstring(value[0])
        ):
            value = value[1:]
        if value is None or value == []:
            continue
        fields.append(f"{name}={_canonical(value)}")
    return f"{type(node).__name__}({','.join(fields)})"


def module_code(module: str) -> str:
    """What a module's share of a fingerprint rests on: its canonical syntax tree."""
    return _canonical_source(_source(module))


@functools.cache
def _canonical_source(source: str) -> str:
    """Cached by the text itself, as `_parse`: most stages share most modules."""
    return _canonical(_parse(source))


def _with_parents(module: str) -> set[str]:
    """A module and the packages above it, whose __init__ runs when it is imported."""
    parts = module.split(".")
    return {".".join(parts[:n]) for n in range(1, len(parts) + 1)}


def _stage_function(stage: str) -> tuple[list[str], set[str]]:
    """The sources of the stage's function in stages.py and of the stages.py functions it
    calls (transitively), and the xlt modules they import."""
    tree = _parse((ROOT / "stages.py").read_text(encoding="utf-8"))
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    if stage not in functions:
        raise KeyError(
            f"xlt.stages has no stage function {stage!r}; stages: "
            f"{', '.join(sorted(n for n in functions if not n.startswith('_')))}"
        )
    seen, queue = set(), [stage]
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        queue += [node.id for node in ast.walk(functions[name]) if isinstance(node, ast.Name) and node.id in functions]
    used = {node.id for name in seen for node in ast.walk(functions[name]) if isinstance(node, ast.Name)}
    modules = _imports(
        [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))], "xlt.stages", names_used=used
    )
    for name in seen:
        modules |= _imports(ast.walk(functions[name]), "xlt.stages")
    return [_canonical(functions[name]) for name in sorted(seen)], modules


def stage_modules(stage: str) -> set[str]:
    """Every xlt module the stage's function runs code of (the left-out ones excepted)."""
    # This module decides when code counts as changed, not what a stage computes: a
    # stage that imports it (for a shard's or a cache's signature) does not hash it.
    left_out = LEFT_OUT.get(stage, set()) | {"xlt.fingerprint"}
    _, start = _stage_function(stage)
    seen: set[str] = set()
    queue = [parent for module in start for parent in _with_parents(module)]
    while queue:
        module = queue.pop()
        if module in seen or module in left_out:
            continue
        seen.add(module)
        tree = _parse(_source(module))
        queue += [parent for found in _imports(ast.walk(tree), module) for parent in _with_parents(found)]
    return seen


def code_hash(stage: str) -> str:
    """16 hex digits of the code `stage` (a function of xlt.stages) runs, before any
    recorded equivalence."""
    sources, _ = _stage_function(stage)
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.encode() + b"\0")
    for module in sorted(stage_modules(stage)):
        digest.update(module.encode() + b"\0" + module_code(module).encode() + b"\0")
    return digest.hexdigest()[:16]


def equivalences(root: Path | None = None) -> dict[tuple[str, str], str]:
    """(stage, code hash) -> the hash it is read as, from data/equivalent_code.csv."""
    path = (root or ROOT) / EQUIVALENCES
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for number, row in enumerate(rows, start=2):
        if set(row) != set(EQUIVALENCE_COLUMNS) or not row["stage"] or not row["code"] or not row["same_as"]:
            raise ValueError(f"{path}: row {number} needs {', '.join(EQUIVALENCE_COLUMNS)}, each filled")
    return {(row["stage"], row["code"]): row["same_as"] for row in rows}


def stage_fingerprint(stage: str) -> str:
    """16 hex digits that change when the code of `stage` (a function of xlt.stages)
    changes: a workflow param of that stage's rule. A code hash recorded as equivalent
    to an earlier one (a refactor checked to change no output) is read as that one."""
    code = code_hash(stage)
    return equivalences().get((stage, code), code)


def stages() -> list[str]:
    """The stage functions of xlt.stages."""
    tree = _parse((ROOT / "stages.py").read_text(encoding="utf-8"))
    return sorted(
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_") and node.name != "log_to"
    )


def fingerprints_at(revision: str, checkout: Path) -> dict[str, str]:
    """Every stage's fingerprint as the code at git `revision` of `checkout` computes it
    (its own equivalences applied): what trees built at that revision carry."""
    with tempfile.TemporaryDirectory() as folder:
        archive = subprocess.run(
            ["git", "-C", str(checkout), "archive", revision, "src"], check=True, capture_output=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
        script = "import json, xlt.fingerprint as f, xlt.stages as s, ast, inspect\n" + (
            "names = [n for n, v in vars(s).items() if inspect.isfunction(v) and v.__module__ == "
            "'xlt.stages' and not n.startswith('_') and n != 'log_to']\n"
            "print(json.dumps({n: f.stage_fingerprint(n) for n in names}))"
        )
        environment = {**os.environ, "PYTHONPATH": str(Path(folder) / "src")}
        output = subprocess.run(
            [sys.executable, "-c", script], check=True, capture_output=True, text=True, env=environment, cwd=folder
        ).stdout
    return json.loads(output)


def record(revision: str, evidence: str, checkout: Path, only: list[str] | None = None) -> list[dict[str, str]]:
    """Record every stage (of `only`, if given: those whose outputs were compared) whose
    code hash differs from its fingerprint at `revision` as equivalent to it; returns
    the rows added."""
    unknown = sorted(set(only or ()) - set(stages()))
    if unknown:
        raise ValueError(f"--stages: {', '.join(unknown)} are not stages; the stages are {', '.join(stages())}")
    before = fingerprints_at(revision, checkout)
    known = equivalences()
    added = []
    for stage in only or stages():
        code = code_hash(stage)
        if stage not in before or before[stage] == code or (stage, code) in known:
            continue
        added.append(
            {
                "stage": stage,
                "code": code,
                "same_as": before[stage],
                "recorded": datetime.date.today().isoformat(),
                "evidence": evidence,
            }
        )
    path = ROOT / EQUIVALENCES
    table = io.StringIO()
    table.write(path.read_text(encoding="utf-8") if path.is_file() else ",".join(EQUIVALENCE_COLUMNS) + "\n")
    csv.DictWriter(table, fieldnames=EQUIVALENCE_COLUMNS, lineterminator="\n").writerows(added)
    write_text(table.getvalue(), path)
    return added


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m xlt.fingerprint",
        description="Each stage's code fingerprint; record a refactor as changing no output.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("show", help="every stage's code hash and the fingerprint it is read as")
    recording = commands.add_parser(
        "record", help="read the current code of every changed stage as its code at --before"
    )
    recording.add_argument("--before", required=True, help="the git revision whose trees must not rerun")
    recording.add_argument("--evidence", required=True, help="how the outputs were found identical (kept in the table)")
    recording.add_argument(
        "--stages", nargs="+", help="only these stages (those whose outputs were compared); default: all"
    )
    arguments = parser.parse_args(argv)
    if arguments.command == "show":
        for stage in stages():
            print(f"{stage}\t{code_hash(stage)}\t{stage_fingerprint(stage)}")
        return
    try:
        added = record(arguments.before, arguments.evidence, ROOT.parents[1], arguments.stages)
    except ValueError as error:
        parser.error(str(error))
    for row in added:
        print(f"{row['stage']}: {row['code']} read as {row['same_as']}")


if __name__ == "__main__":
    main()
