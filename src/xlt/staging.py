"""Staging: every Hub model and data set the study reads (Belebele, Hub training sets),
downloaded once, on the login node, at a pinned commit into a shared folder
(`staging.dir`), so that compute jobs read files and never the network (they run with the hub
offline, xlt.launch). A pinned revision
is a commit hash: a branch such as `main` may move between the base and the fine-tuned
variants' jobs, so on a cluster an unpinned one stops at planning unless
`staging.allow_unpinned` lets it through (it is then resolved once, here, and the
staged record says which commit it was)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import XltError

logger = logging.getLogger(__name__)

COMMIT = re.compile(r"^[0-9a-f]{40}$")
# What a staged folder says it holds (xlt.provenance reads it).
STAGED_RECORD = "xlt_staged.json"
# What a model job reads: weights (safetensors only, never pickles), configs, tokenizer
# files and chat templates; Meta's `original/` consolidated weights (as large again) stay out.
MODEL_FILES = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.jinja"]
REMOTE_CODE_FILES = ["*.py"]
IGNORED_FILES = ["original/*"]
# Before every model job's command once models are staged: transformers, huggingface_hub
# and datasets then fail at once on any attempt to reach the Hub instead of downloading.
OFFLINE_ENVIRONMENT = "export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1; "


@dataclass(frozen=True)
class HubRepo:
    """A Hub repository the study stages: its name (the staged folder's: a model's
    config key, `belebele`, `training-<source>`), id, revision and kind."""

    name: str
    repo_id: str
    revision: str | None
    repo_type: str = "model"
    trust_remote_code: bool = False


def staging_dir(config: dict) -> str | None:
    return config.get("staging", {}).get("dir")


def is_pinned(revision: str | None) -> bool:
    return revision is not None and COMMIT.match(revision) is not None


def staged_models(config: dict) -> dict[str, HubRepo]:
    """The Hub models of the config (those with an `id`), by name; none without `staging.dir`."""
    if staging_dir(config) is None:
        return {}
    return {
        name: HubRepo(name, entry["id"], entry.get("revision"), "model", bool(entry.get("trust_remote_code", False)))
        for name, entry in config["models"].items()
        if entry.get("id")
    }


def training_name(source: str) -> str:
    return f"training-{source}"


def staged_datasets(config: dict) -> dict[str, HubRepo]:
    """The Hub data sets of the config, by staged name: Belebele (`belebele`, with
    data.source hub) and each source's Hub training set (`training-<source>`); none
    without `staging.dir`."""
    if staging_dir(config) is None:
        return {}
    found = {}
    if config["data"]["source"] == "hub":
        found["belebele"] = HubRepo("belebele", config["data"]["hub_id"], config["data"]["hub_revision"], "dataset")
    if isinstance(config["finetune"]["data"], dict):
        for lang, entry in config["finetune"]["data"].items():
            if "hub" in entry:
                found[training_name(lang)] = HubRepo(
                    training_name(lang), entry["hub"]["id"], entry["hub"].get("revision"), "dataset"
                )
    return found


def unpinned_revisions(config: dict) -> list[str]:
    """Each Hub revision of the config that is not a commit hash, as `key 'value'`."""
    found = [
        f"models.{name}.revision {entry.get('revision')!r}"
        for name, entry in config["models"].items()
        if entry.get("id") and not is_pinned(entry.get("revision"))
    ]
    if config["data"]["source"] == "hub" and not is_pinned(config["data"]["hub_revision"]):
        found.append(f"data.hub_revision {config['data']['hub_revision']!r}")
    if isinstance(config["finetune"]["data"], dict):
        for lang, entry in config["finetune"]["data"].items():
            if "hub" in entry and not is_pinned(entry["hub"].get("revision")):
                found.append(f"finetune.data.{lang}.hub.revision {entry['hub'].get('revision')!r}")
    return found


def check_cluster_config(config: dict, source: str) -> None:
    """What a run on a cluster needs before any job is submitted: every Hub revision a
    commit (unless staging.allow_unpinned), and a staging folder wherever a Hub model is
    loaded, so that no compute job downloads."""
    unpinned = unpinned_revisions(config)
    if unpinned and not config["staging"]["allow_unpinned"]:
        shown = ", ".join(unpinned[:3]) + (f" and {len(unpinned) - 3} more" if len(unpinned) > 3 else "")
        raise XltError(
            f"{source}: {shown} {'is' if len(unpinned) == 1 else 'are'} not a commit hash (40 hex "
            "digits); pin every Hub revision to a commit "
            "for a cluster run, or set staging.allow_unpinned: true to resolve branches once when staging"
        )
    hub_models = [name for name, entry in config["models"].items() if entry.get("id")]
    if hub_models and staging_dir(config) is None:
        raise XltError(
            f"{source}: models {', '.join(hub_models)} are Hub ids and staging.dir is not set; on a "
            "cluster set staging.dir to a shared folder, "
            "where a local rule downloads them once, so that no compute job downloads"
        )


def read_staged(folder: str | Path) -> dict:
    """The record of a staged folder, or one line saying it is not one."""
    path = Path(folder) / STAGED_RECORD
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise XltError(
            f"{folder}: not a staged Hub repository ({STAGED_RECORD} unreadable: {type(error).__name__}); "
            "run the stage rules"
        ) from None


def stage(repo: HubRepo, out_dir: str | Path) -> dict:
    """Download `repo` at its revision's commit into `out_dir`, with a record of what
    was staged. The download goes to a sibling `.partial` folder that a rerun (a
    retried job) resumes, and is moved into place whole. A model brings only what a
    model job reads (MODEL_FILES); a data set comes whole."""
    from huggingface_hub import HfApi, snapshot_download

    out_dir = Path(out_dir)
    what = f"{repo.repo_type} {repo.name}"
    try:
        commit = HfApi().repo_info(repo.repo_id, revision=repo.revision, repo_type=repo.repo_type).sha
    except Exception as error:  # gated, unknown, offline: huggingface_hub raises several types
        raise XltError(
            f"{what}: cannot resolve {repo.repo_id} at revision {repo.revision!r} on the Hub ({type(error).__name__}: "
            f"{(str(error).splitlines() or [''])[0][:200]}); gated repositories need `hf auth login` on this node"
        ) from None
    partial = out_dir.with_name(f".{out_dir.name}.partial")
    logger.info(f"{what}: staging {repo.repo_id} at {commit} (revision {repo.revision}) into {out_dir}")
    model = repo.repo_type == "model"
    snapshot_download(
        repo.repo_id,
        repo_type=repo.repo_type,
        revision=commit,
        local_dir=partial,
        allow_patterns=MODEL_FILES + (REMOTE_CODE_FILES if repo.trust_remote_code else []) if model else None,
        ignore_patterns=IGNORED_FILES if model else None,
    )
    # huggingface_hub's download bookkeeping (resumption metadata) is no part of the repository
    shutil.rmtree(partial / ".cache", ignore_errors=True)
    files = {
        str(path.relative_to(partial)): path.stat().st_size for path in sorted(partial.rglob("*")) if path.is_file()
    }
    if model and not any(name.endswith(".safetensors") for name in files):
        raise XltError(
            f"{what}: {repo.repo_id} at {commit} has no safetensors weights; xlt never loads pickled weights"
        )
    size = sum(files.values())
    record = {"id": repo.repo_id, "revision": repo.revision, "commit": commit, "files": files, "bytes": size}
    (partial / STAGED_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, out_dir)
    logger.info(f"{what}: {len(files)} files, {size / 1e9:.1f} GB -> {out_dir}")
    return record
