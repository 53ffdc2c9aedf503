"""Each stage's code hash covers the code that stage runs and nothing else, so an edit
reruns the stage it concerns (tests/test_reruns.py checks that through Snakemake), and
the modules of src/xlt import each other without cycles."""

from __future__ import annotations

import ast
import shutil

import pytest

from xlt import fingerprint
from xlt.fingerprint import stage_fingerprint, stage_modules

STAGES = ("prepare_data", "prepare_model", "finetune", "merge", "predict", "score", "compare", "report")


@pytest.mark.parametrize(
    "stage, covers, leaves_out",
    [
        (
            "compare",
            {"xlt.stats", "xlt.stattests", "xlt.paths"},
            {"xlt.report", "xlt.finetune", "xlt.models", "xlt.inference", "xlt.extract"},
        ),
        ("report", {"xlt.report", "xlt.verdict"}, {"xlt.stats", "xlt.finetune", "xlt.models"}),
        ("score", {"xlt.scoring", "xlt.extract"}, {"xlt.stats", "xlt.models", "xlt.inference"}),
        (
            "finetune",
            {"xlt.finetune", "xlt.models", "xlt.prompts", "xlt.data", "xlt.batching"},
            {"xlt.inference.engine", "xlt.inference.hf", "xlt.stats", "xlt.extract", "xlt.config"},
        ),
        (
            "predict",
            {
                "xlt.inference.engine",
                "xlt.inference.hf",
                "xlt.inference.vllm",
                "xlt.inference.requests",
                "xlt.batching",
                "xlt.models",
                "xlt.prompts",
            },
            {"xlt.finetune", "xlt.extract", "xlt.stats"},
        ),
        ("prepare_data", {"xlt.data"}, {"xlt.models", "xlt.stats"}),
    ],
)
def test_a_stage_hashes_the_modules_it_runs(stage, covers, leaves_out):
    modules = stage_modules(stage)
    assert covers <= modules
    assert not leaves_out & modules


def test_every_stage_has_a_fingerprint_and_they_differ():
    prints = {stage: stage_fingerprint(stage) for stage in STAGES}
    assert all(len(value) == 16 for value in prints.values())
    assert len(set(prints.values())) == len(STAGES)
    with pytest.raises(KeyError, match="no stage function 'finetuning'"):
        stage_fingerprint("finetuning")


def test_the_fingerprint_changes_with_the_code_it_covers(tmp_path, monkeypatch):
    copy = tmp_path / "xlt"
    shutil.copytree(fingerprint.ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprint, "ROOT", copy)
    before = {stage: stage_fingerprint(stage) for stage in STAGES}
    with open(copy / "stats" / "effects.py", "a") as handle:
        handle.write("\nCHANGED_LINE = 1\n")
    after = {stage: stage_fingerprint(stage) for stage in STAGES}
    assert {stage for stage in STAGES if before[stage] != after[stage]} == {"compare"}
    # The stage's own function in stages.py counts; another stage's function does not.
    stages = (copy / "stages.py").read_text()
    (copy / "stages.py").write_text(
        stages.replace('logger.info(f"report written to {out_dir}")', 'logger.info(f"report in {out_dir}")')
    )
    changed = {stage for stage in STAGES if stage_fingerprint(stage) != after[stage]}
    assert changed == {"report"}


def test_comments_docstrings_and_formatting_change_no_fingerprint(tmp_path, monkeypatch):
    """What cannot change a result reruns nothing: docstrings (of errors.py, which every
    stage imports, of a class there, of the finetune stage function in stages.py, of
    finetune.py), comments, blank lines, line breaks and quotes."""
    copy = tmp_path / "xlt"
    shutil.copytree(fingerprint.ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprint, "ROOT", copy)
    before = {stage: stage_fingerprint(stage) for stage in STAGES}

    def edit(name, old, new):
        path = copy / name
        text = path.read_text()
        assert old in text, (name, old)
        path.write_text(text.replace(old, new, 1))

    edit("errors.py", '"""The one exception type', '"""Edited.\n\nThe one exception type')
    edit("errors.py", '"""A problem with the user', '"""Edited. A problem with the user')
    edit("stages.py", "def finetune(", "# a comment\n\n\ndef finetune(")
    edit("stages.py", '"""Model `name`\'s LoRA adapter', '"""Edited. Model `name`\'s LoRA adapter')
    edit("finetune.py", '"""', '"""Edited. ')
    edit("finetune.py", "\nimport ", "\n# a comment\nimport ")
    edit("stats/effects.py", "import numpy as np", "import numpy as np  # a comment")
    # The same code in another layout: one call split over lines, single quotes.
    edit("verdict.py", '"relatedness": "fine-tuning"', "'relatedness': 'fine-tuning'")
    edit("paths.py", 'VARIANTS = ("base",)', 'VARIANTS = (\n    "base",\n)')
    assert {stage: stage_fingerprint(stage) for stage in STAGES} == before


def _import_graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(fingerprint.ROOT.rglob("*.py")):
        parts = path.relative_to(fingerprint.ROOT.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[module] = fingerprint._imports(ast.walk(ast.parse(path.read_text(encoding="utf-8"))), module) - {module}
    return graph


def test_xlt_modules_import_each_other_without_cycles():
    """config and prompts used to import each other (read_yaml now lives in yamlfile)."""
    graph = _import_graph()
    assert "xlt.prompts" in graph["xlt.config"]
    done, active = set(), []

    def visit(module):
        if module in active:
            raise AssertionError("import cycle: " + " -> ".join([*active[active.index(module) :], module]))
        if module in done:
            return
        active.append(module)
        for imported in graph.get(module, ()):
            if imported != "xlt" and not module.startswith(imported + "."):
                visit(imported)
        active.pop()
        done.add(module)

    for module in graph:
        visit(module)
    assert "xlt.config" not in graph["xlt.prompts"]


def _copy_of_package(tmp_path, monkeypatch):
    copy = tmp_path / "src" / "xlt"
    shutil.copytree(fingerprint.ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprint, "ROOT", copy)
    return copy


def test_a_recorded_equivalence_reads_the_new_code_as_the_old(tmp_path, monkeypatch):
    copy = _copy_of_package(tmp_path, monkeypatch)
    (copy / fingerprint.EQUIVALENCES).unlink(missing_ok=True)
    before = stage_fingerprint("score")
    scoring = copy / "scoring.py"
    scoring.write_text(scoring.read_text(encoding="utf-8") + "\nREFACTORED = True\n", encoding="utf-8")
    changed = stage_fingerprint("score")
    assert changed != before
    table = copy / fingerprint.EQUIVALENCES
    table.write_text(
        f"stage,code,same_as,recorded,evidence\nscore,{changed},{before},2026-12-07,test\n", encoding="utf-8"
    )
    assert stage_fingerprint("score") == before
    assert fingerprint.code_hash("score") == changed
    table.write_text("stage,code,same_as,recorded,evidence\nscore,,x,2026-12-07,test\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"equivalent_code.csv: row 2 needs stage, code, same_as"):
        stage_fingerprint("score")


def test_record_maps_each_changed_stage_to_its_fingerprint_at_a_revision(tmp_path, monkeypatch):
    """`python -m xlt.fingerprint record --before REV` reads what trees built at REV carry
    from REV's own code, and maps only the stages whose code changed since."""
    import subprocess

    copy = _copy_of_package(tmp_path, monkeypatch)
    (copy / fingerprint.EQUIVALENCES).unlink(missing_ok=True)
    before = {stage: stage_fingerprint(stage) for stage in fingerprint.stages()}
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "src"], check=True)
    subprocess.run([*git, "commit", "-qm", "before"], check=True)
    scoring = copy / "scoring.py"
    scoring.write_text(scoring.read_text(encoding="utf-8") + "\nREFACTORED = True\n", encoding="utf-8")
    assert fingerprint.record("HEAD", "only predict compared", tmp_path, only=["predict"]) == []
    with pytest.raises(ValueError, match="--stages: predicting are not stages"):
        fingerprint.record("HEAD", "x", tmp_path, only=["predicting"])
    added = fingerprint.record("HEAD", "outputs compared", tmp_path)
    assert {row["stage"] for row in added} == {
        stage for stage in before if fingerprint.code_hash(stage) != before[stage]
    }
    assert "score" in {row["stage"] for row in added} and "predict" not in {row["stage"] for row in added}
    assert {stage: stage_fingerprint(stage) for stage in before} == before
    assert fingerprint.record("HEAD", "again", tmp_path) == []
