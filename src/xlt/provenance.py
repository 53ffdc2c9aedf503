"""results/provenance.json: what a run's numbers were computed from. Every model and
data set with its resolved revision (the Hub commit hash, or the sha256 of a local or
embedded file), xlt's version and git commit, the versions of the main libraries, and
the hash of the config."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from importlib import metadata
from pathlib import Path

from . import __version__
from .hashes import file_sha256
from .paths import STAGED_DATASET
from .staging import read_staged, staged_datasets, staging_dir, training_name

LIBRARIES = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "snakemake",
    "vllm",
)
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def config_hash(config: dict) -> str:
    """sha256 of the config as canonical JSON (sorted keys): equal for equal settings."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def hub_revision(repo_id: str, revision: str | None, repo_type: str) -> str:
    """The commit a Hub revision resolves to; offline, a pinned commit stands for itself."""
    try:
        from huggingface_hub import HfApi

        info = HfApi().repo_info(repo_id, revision=revision, repo_type=repo_type, timeout=10)
    except Exception as error:  # offline, gated, unknown: say so rather than guess
        if revision and COMMIT.match(revision):
            return revision
        return f"unresolved ({type(error).__name__}: {(str(error).splitlines() or [''])[0][:120]})"
    return info.sha or "unresolved (the Hub's answer names no commit)"


def model_provenance(base_dir: str | Path) -> dict:
    from .models import MANIFEST

    manifest = json.loads((Path(base_dir) / MANIFEST).read_text(encoding="utf-8"))
    if manifest["kind"] == "hub":
        return {**manifest, "resolved": hub_revision(manifest["id"], manifest.get("revision"), "model")}
    if manifest["kind"] == "staged":
        return {**manifest, "resolved": manifest["commit"], "staged": staged_record(manifest)}
    digest = manifest.get("sha256")
    return {
        **manifest,
        "resolved": f"sha256:{digest}"
        if digest
        else "unrecorded (prepared by an xlt that kept no hash; rerun prepare_model)",
    }


def staged_record(manifest: dict) -> dict:
    """What staging downloaded (files, bytes, at which commit) and, for an FP8 model,
    what its conversion wrote, as read from the staged folders."""
    from .fp8 import CONVERTED_RECORD

    original = manifest.get("serve", manifest["path"])
    staged = read_staged(original)
    record = {"folder": original, "commit": staged["commit"], "files": len(staged["files"]), "bytes": staged["bytes"]}
    if "serve" in manifest:
        record["converted"] = {
            "folder": manifest["path"],
            **json.loads((Path(manifest["path"]) / CONVERTED_RECORD).read_text(encoding="utf-8")),
        }
    return record


def resolved_dataset(config: dict, name: str, repo_id: str, revision: str | None) -> dict:
    """The commit a Hub data set was read at: its staged record's (and what was
    staged) where staging applies, else resolved on the Hub now."""
    if name in staged_datasets(config):
        folder = STAGED_DATASET.format(staging=staging_dir(config), dataset=name)
        staged = read_staged(folder)
        return {
            "resolved": staged["commit"],
            "staged": {"folder": folder, "files": len(staged["files"]), "bytes": staged["bytes"]},
        }
    return {"resolved": hub_revision(repo_id, revision, "dataset")}


def dataset_provenance(config: dict) -> dict:
    """Belebele (fixture files or the Hub dataset) and each source's training data."""
    data = config["data"]
    if data["source"] == "fixture":
        belebele = {
            "kind": "fixture",
            "files": {
                lang: f"sha256:{file_sha256(Path(data['fixture_dir']) / f'{lang}.jsonl')}"
                for lang in config["languages"]
            },
        }
    else:
        belebele = {
            "kind": "hub",
            "id": data["hub_id"],
            "revision": data["hub_revision"],
            **resolved_dataset(config, "belebele", data["hub_id"], data["hub_revision"]),
        }
    training = {}
    if isinstance(config["finetune"]["data"], dict):
        for lang, entry in config["finetune"]["data"].items():
            if "path" in entry:
                training[lang] = {
                    "kind": "local",
                    "path": entry["path"],
                    "resolved": f"sha256:{file_sha256(entry['path'])}",
                }
            else:
                hub = entry["hub"]
                training[lang] = {
                    "kind": "hub",
                    **hub,
                    **resolved_dataset(config, training_name(lang), hub["id"], hub.get("revision")),
                }
    else:
        training = {lang: {"kind": "belebele", "split": "train"} for lang in config["source_languages"]}
    return {"belebele": belebele, "training": training}


def git_commit(folder: str | Path) -> str:
    """HEAD of the checkout the workflow runs from, "+dirty" with uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("+dirty" if dirty.strip() else "")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance_record(
    config: dict, base_dirs: dict[str, str], checkout: str | Path, training_checks: dict | None = None
) -> dict:
    """`training_checks`: source -> what prepare_training's checks found (rows read,
    duplicates dropped, test items let through), recorded with each training set."""
    datasets = dataset_provenance(config)
    for lang, checks in (training_checks or {}).items():
        datasets["training"][lang]["checks"] = {key: value for key, value in checks.items() if key != "origin"}
    return {
        "xlt": {"version": __version__, "git_commit": git_commit(checkout)},
        "config_sha256": config_hash(config),
        "models": {name: model_provenance(path) for name, path in base_dirs.items()},
        "datasets": datasets,
        "libraries": library_versions(),
    }
