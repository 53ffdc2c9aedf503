"""Shards: what a predict job has finished, kept beside each prompt's outputs, so that
a job killed at any moment (SIGKILL included) continues where it stopped, and a job
rerun because one prompt's settings changed reads the other prompt's results back
instead of recomputing them.

A shard is a JSON-lines file. Its first line names the run it belongs to (a
fingerprint of model, adapter, the prompt's requests and decoding settings); every
further line is one finished wave (rows decoded together), written and fsync'ed whole.
A run with a different fingerprint starts the shard afresh; a torn last line (the kill
came mid-write) is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..atomic import atomic_path


def run_fingerprint(**parts) -> str:
    """A stable hash of everything that decides a job's outputs."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def directory_signature(path: str | Path | None) -> list | None:
    """Name, size and modification time of every file under `path`: a re-prepared
    model or a retrained adapter changes it, without hashing weights of many GB."""
    if path is None:
        return None
    root = Path(path)
    return [[str(file.relative_to(root)), file.stat().st_size, file.stat().st_mtime_ns] for file in sorted(root.rglob("*")) if file.is_file()]


def shard_path(outputs: list[str]) -> Path:
    """The shard of one prompt of a predict job (`outputs`: that prompt's files):
    hidden beside them, never an output itself, so Snakemake neither deletes it nor
    mistakes it for a result."""
    return Path(outputs[0]).parent / ".predict.jsonl"


class Shard:
    def __init__(self, path: str | Path, fingerprint: str):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self._done = self._read()
        self._rewrite()

    def _header(self) -> str | None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                return json.loads(handle.readline()).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            return None

    def _read(self) -> dict[int, dict[int, object]]:
        if self._header() != self.fingerprint:
            return {}
        done = {}
        with open(self.path, encoding="utf-8") as handle:
            next(handle)
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    break  # torn by a kill mid-write: everything before it is whole
                done[record["wave"]] = {int(i): result for i, result in record["results"]}
        return done

    @staticmethod
    def _line(record: dict) -> str:
        return json.dumps(record, ensure_ascii=False) + "\n"

    def _wave_line(self, wave: int, results: dict[int, object]) -> str:
        return self._line({"wave": wave, "results": [[i, result] for i, result in sorted(results.items())]})

    def _rewrite(self) -> None:
        """Start the file over with the header and the whole waves only, so that
        appends never follow a torn line."""
        with atomic_path(self.path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            handle.write(self._line({"fingerprint": self.fingerprint}))
            for wave, results in sorted(self._done.items()):
                handle.write(self._wave_line(wave, results))

    def completed(self) -> dict[int, object]:
        """Request index -> its result (as JSON), of every wave already done."""
        return {index: result for results in self._done.values() for index, result in results.items()}

    def append(self, wave: int, results: dict[int, object]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(self._wave_line(wave, results))
            handle.flush()
            os.fsync(handle.fileno())
        self._done[wave] = dict(results)
