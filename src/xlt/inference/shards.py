"""Shards: what a predict job has finished, kept beside each prompt's outputs, so that
a job killed at any moment (SIGKILL included) continues where it stopped, and a job
rerun because one prompt's settings changed reads the other prompt's results back
instead of recomputing them.

A shard is a JSON-lines file. Its first line names the run it belongs to (the shard
format and a fingerprint of model, adapter, the prompt's requests and decoding
settings); every further line is one finished wave (rows decoded together), written and
fsync'ed whole. A run with a different fingerprint or format starts the shard afresh.

Nothing read back is trusted unchecked: every result carries the identity of its
request (`Identity`: its item, its prompt, a hash of everything it encodes), and every
line a hash of itself. A line that is torn (the kill came mid-write), malformed, edited
since it was written, or whose results are not the requests of its wave is left out and
its results recomputed; the log says how many.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..atomic import atomic_path

logger = logging.getLogger(__name__)

# Version 2: each result with its request's identity, each wave line with its hash.
FORMAT = 2


def run_fingerprint(**parts) -> str:
    """A stable hash of everything that decides a job's outputs."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def identity(item: str, job: str, encoded: dict) -> dict:
    """What a stored result must name to be read back as a request's result: its item,
    its prompt (`job`), and a hash of what the request encodes (token ids and budgets,
    whatever kind of request it is)."""
    return {"item": item, "job": job, "encoded": run_fingerprint(**encoded)[:32]}


def directory_signature(path: str | Path | None) -> list | None:
    """Name, size and modification time of every file under `path`: a re-prepared
    model or a retrained adapter changes it, without hashing weights of many GB."""
    if path is None:
        return None
    root = Path(path)
    return [
        [str(file.relative_to(root)), file.stat().st_size, file.stat().st_mtime_ns]
        for file in sorted(root.rglob("*"))
        if file.is_file()
    ]


def shard_path(outputs: list[str]) -> Path:
    """The shard of one prompt of a predict job (`outputs`: that prompt's files):
    hidden beside them, never an output itself, so Snakemake neither deletes it nor
    mistakes it for a result."""
    return Path(outputs[0]).parent / ".predict.jsonl"


def _line_hash(wave, results) -> str:
    return run_fingerprint(wave=wave, results=results)


class Shard:
    """The finished waves of one prompt's requests. `identities[i]` is what request i
    (of this shard's requests, in order) is, `waves[i]` the wave it belongs to, and
    `valid(result)` whether a stored result has the shape of one."""

    def __init__(
        self,
        path: str | Path,
        fingerprint: str,
        identities: list[dict],
        waves: list[int],
        valid: Callable[[object], bool],
    ):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.identities, self.waves, self.valid = identities, waves, valid
        self.members: dict[int, set[int]] = {}
        for index, wave in enumerate(waves):
            self.members.setdefault(wave, set()).add(index)
        self.rejected = 0  # lines left out of what is read back
        self._done = self._read()
        self._rewrite()

    def _header(self) -> dict | None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                header = json.loads(handle.readline())
        except (OSError, ValueError):
            return None
        return header if isinstance(header, dict) else None

    def _read(self) -> dict[int, dict[int, object]]:
        if self._header() != {"format": FORMAT, "fingerprint": self.fingerprint}:
            return {}
        done = {}
        with open(self.path, encoding="utf-8") as handle:
            next(handle)
            for line in handle:
                wave = self._wave(line)
                if wave is None:
                    self.rejected += 1
                else:
                    done[wave[0]] = wave[1]
        return done

    def _wave(self, line: str) -> tuple[int, dict[int, object]] | None:
        """(wave, request index -> result) of a line that is whole, unedited and holds
        the results of its own wave's requests, all of them (a wave is recomputed whole,
        as an uninterrupted run computes it); None otherwise."""
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if (
            not isinstance(record, dict)
            or set(record) != {"wave", "results", "sha256"}
            or record["sha256"] != _line_hash(record["wave"], record["results"])
        ):
            return None
        wave, results = record["wave"], record["results"]
        if type(wave) is not int or not isinstance(results, list):
            return None
        kept = {}
        for entry in results:
            if not (isinstance(entry, dict) and set(entry) == {"index", "request", "result"}):
                return None
            index = entry["index"]
            if not (type(index) is int and 0 <= index < len(self.identities)) or index in kept:
                return None
            if (
                entry["request"] != self.identities[index]
                or self.waves[index] != wave
                or not self.valid(entry["result"])
            ):
                return None
            kept[index] = entry["result"]
        return (wave, kept) if set(kept) == self.members.get(wave) else None

    @staticmethod
    def _line(record: dict) -> str:
        return json.dumps(record, ensure_ascii=False) + "\n"

    def _wave_line(self, wave: int, results: dict[int, object]) -> str:
        entries = [
            {"index": i, "request": self.identities[i], "result": result} for i, result in sorted(results.items())
        ]
        return self._line({"wave": wave, "results": entries, "sha256": _line_hash(wave, entries)})

    def _rewrite(self) -> None:
        """Start the file over with the header and the whole waves only, so that
        appends never follow a torn or rejected line."""
        with atomic_path(self.path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            handle.write(self._line({"format": FORMAT, "fingerprint": self.fingerprint}))
            for wave, results in sorted(self._done.items()):
                handle.write(self._wave_line(wave, results))

    def completed(self) -> dict[int, Any]:
        """Request index -> its result (as JSON, of the shape `valid` checked), of every
        wave already done."""
        return {index: result for results in self._done.values() for index, result in results.items()}

    def append(self, wave: int, results: dict[int, object]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(self._wave_line(wave, results))
            handle.flush()
            os.fsync(handle.fileno())
        self._done[wave] = dict(results)


class PromptShards:
    """The shards of one run, one per prompt (`resume`: prompt -> its shard): what they
    hold for these requests, and where each finished wave's results go. Each prompt's
    shard has a fingerprint of its own requests (and `signature`: what besides them
    decides the outputs), so a run whose other prompt changed reads this one's results
    back; a stored result is read back only for the request it names, from the wave
    (`wave_of`: request index -> wave) that request is in."""

    def __init__(
        self,
        requests,
        encoded,
        resume: Mapping[str, Path] | None,
        signature: dict,
        wave_of: dict[int, int],
        valid: Callable[[object], bool],
    ):
        from dataclasses import asdict

        self.shards: list[tuple[Shard, list[int]]] = []
        for job, path in (resume or {}).items():
            members = [index for index, request in enumerate(requests) if request.job == job]
            fingerprint = run_fingerprint(
                **signature,
                cells=sorted({cell for index in members for cell in requests[index].cells}),
                requests=[(requests[index].item_id, asdict(encoded[index])) for index in members],
            )
            identities = [
                identity(f"{requests[index].lang}/{requests[index].item_id}", job, asdict(encoded[index]))
                for index in members
            ]
            shard = Shard(path, fingerprint, identities, [wave_of[index] for index in members], valid)
            self.shards.append((shard, members))
            rejected = (
                f"; {shard.rejected} line(s) torn, malformed, edited or not of their wave: their results are recomputed"
                if shard.rejected
                else ""
            )
            logger.info(f"{job}: {len(shard.completed())} of {len(members)} results read back from {path}{rejected}")

    def completed(self) -> dict[int, Any]:
        """Request index -> its stored result (as JSON, of the shape `valid` checked)."""
        return {members[local]: stored for shard, members in self.shards for local, stored in shard.completed().items()}

    def record(self, wave: int, results: dict[int, object]) -> None:
        """Keep a finished wave's results (request index -> result as JSON) in each
        prompt's shard."""
        for shard, members in self.shards:
            finished = {local: results[index] for local, index in enumerate(members) if index in results}
            if finished:
                shard.append(wave, finished)


def discard(paths: list[Path]) -> list[Path]:
    """Remove these shards (`xlt predict --fresh`); the ones that were there."""
    removed = [path for path in paths if path.is_file() and not path.is_symlink()]
    for path in removed:
        path.unlink()
    return removed
