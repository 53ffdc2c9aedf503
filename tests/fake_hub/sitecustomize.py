"""A stand-in Hub for workflow runs in a subprocess (on PYTHONPATH, so every Python the
run starts loads it): huggingface_hub's `HfApi.repo_info` and `snapshot_download`
answer from folders on disk, `$XLT_FAKE_HUB/<owner>--<name>`, at the commit
`$XLT_FAKE_HUB_COMMIT`; every download is appended to `$XLT_FAKE_HUB/downloads.jsonl`,
so a test sees which process fetched what. Everything else of huggingface_hub is real."""

import os

if os.environ.get("XLT_FAKE_HUB"):
    import fnmatch
    import json
    import shutil
    import types
    from pathlib import Path

    import huggingface_hub

    ROOT = Path(os.environ["XLT_FAKE_HUB"])

    class HfApi:
        def repo_info(self, repo_id, revision=None, repo_type=None, **kwargs):
            if not (ROOT / repo_id.replace("/", "--")).is_dir():
                raise FileNotFoundError(f"no repository {repo_id}")
            return types.SimpleNamespace(sha=os.environ["XLT_FAKE_HUB_COMMIT"])

    def snapshot_download(
        repo_id, repo_type=None, revision=None, local_dir=None, allow_patterns=None, ignore_patterns=None, **kwargs
    ):
        folder = ROOT / repo_id.replace("/", "--")
        with open(ROOT / "downloads.jsonl", "a", encoding="utf-8") as log:
            log.write(
                json.dumps(
                    {
                        "repo_id": repo_id,
                        "revision": revision,
                        "pid": os.getpid(),
                        "offline": os.environ.get("HF_HUB_OFFLINE"),
                    }
                )
                + "\n"
            )
        for path in folder.rglob("*"):
            name = str(path.relative_to(folder))
            allowed = allow_patterns is None or any(fnmatch.fnmatch(name, p) for p in allow_patterns)
            if path.is_file() and allowed and not any(fnmatch.fnmatch(name, p) for p in ignore_patterns or []):
                (Path(local_dir) / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, Path(local_dir) / name)
        return str(local_dir)

    huggingface_hub.HfApi = HfApi
    huggingface_hub.snapshot_download = snapshot_download
