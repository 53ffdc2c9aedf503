"""The compute floor of a finished run, and how far the run's wall time is above it.

    python bench/floor.py                          # results/ and the newest Snakemake log
    python bench/floor.py --results DIR --log .snakemake/log/X.snakemake.log --out bench/results/floor.md

The floor counts only the matrix products a run cannot avoid, from the run's own token
counts (the same rule as docs/measurements.md):
  * fine-tuning: 4 x active non-embedding parameters per real (unpadded) token, forward
    and the backward pass to the activations (the frozen weights get no gradient), plus
    the output layer, forward and backward, for every supervised token;
  * prediction: 2 x active non-embedding parameters per prompt token that no engine can
    avoid feeding: the job's requests rebuilt as the predict stage builds them (direct,
    CoT, the choice cell's rotated prompts, the cloze prompt with each option's tokens
    after it, the options after the answer phrase alone) and tokenized by the model's own
    tokenizer, every distinct token prefix among them counted once (the nodes of their
    token trie: what an engine sharing every common prefix would feed); 2 x parameters
    plus the output layer per generated token (from the predictions) and per scored
    option token after an option's first; the output layer once per prompt row;
  * a Mixture-of-Experts model counts the experts a token is routed to, not all of them.
It is divided by this machine's float32 matmul peak (a 2048 x 2048 product on one
thread, best of repeated runs) times the cores the run had (its jobs run one thread
each, one job per core). Model preparation is arithmetic-free (a file conversion) and so
counts as wall time above the floor. Wall time and per-job times are read from the
Snakemake log of the run (timestamps to the second).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "src"))

from inference import cpu_name, matmul_peak  # noqa: E402


@dataclass(frozen=True)
class ModelShape:
    active_parameters: int  # non-embedding parameters one token goes through
    output_layer: int  # vocabulary x hidden size

    @classmethod
    def of(cls, folder: Path) -> ModelShape:
        """From a model folder: config.json and the safetensors headers (no weights read)."""
        from safetensors import safe_open

        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        config = config.get("text_config", config)
        output_layer = int(config["vocab_size"]) * int(config["hidden_size"])
        dense, experts = 0, 0
        for path in sorted(folder.glob("*.safetensors")):
            with safe_open(path, framework="pt") as handle:
                for name in list(handle.keys()):
                    size = 1
                    for dimension in handle.get_slice(name).get_shape():
                        size *= dimension
                    if "embed_tokens" in name or "lm_head" in name:
                        continue
                    if ".experts." in name or name.endswith(".experts") or ".experts_" in name:
                        experts += size
                    else:
                        dense += size
        routed = config.get("num_experts_per_tok")
        total = config.get("num_experts") or config.get("num_local_experts") or config.get("n_routed_experts")
        active = dense + (experts * routed // total if experts and routed and total else experts)
        return cls(active_parameters=active, output_layer=output_layer)


def model_folder(base: Path) -> Path:
    """The folder of a prepared base: itself, or the local path its manifest names."""
    manifest = base / "xlt_model.json"
    if (base / "config.json").is_file() or not manifest.is_file():
        return base
    record = json.loads(manifest.read_text(encoding="utf-8"))
    if "path" not in record:
        raise SystemExit(
            f"{manifest}: a Hub model ({record.get('id')}); the floor needs its config.json and weights on disk"
        )
    return Path(record["path"])


def finetune_flop(adapter: Path, shape: ModelShape) -> float:
    log = pd.read_csv(adapter / "train_log.csv")
    return 4 * shape.active_parameters * float(log["tokens"].sum()) + 4 * shape.output_layer * float(
        log["supervised_tokens"].sum()
    )


def prefix_tree_tokens(rows: list[list[int]]) -> int:
    """Tokens in the trie of `rows`: each distinct prefix once. Over the rows in sorted
    order, each adds its length less the prefix it shares with the one before it."""
    total, previous = 0, cast(tuple[int, ...], ())
    for row in sorted({tuple(row) for row in rows}):
        shared = next((i for i, (a, b) in enumerate(zip(previous, row)) if a != b), min(len(previous), len(row)))
        total += len(row) - shared
        previous = row
    return total


@dataclass(frozen=True)
class PromptWork:
    """What a model's predict job feeds before generating, the same for each of its
    variants (their prompts are the same): trie tokens, prompt rows (each one output
    layer for its last position) and option tokens scored after an option's first."""

    tokens: int
    rows: int
    scored: int

    @classmethod
    def of(cls, encoded: list) -> PromptWork:
        fed, scored = [], 0
        for request in encoded:
            fed.append(request.input_ids)
            # A scored label's tokens after its first are fed after the prompt (its
            # first is read from the prompt's last logits): the cloze options.
            for ids in request.label_ids if request.scores_prompt and request.label_ids else []:
                if len(ids) > 1:
                    fed.append(request.input_ids + ids[:-1])
                    scored += len(ids) - 1
        prompts = {tuple(request.input_ids) for request in encoded}
        return cls(tokens=prefix_tree_tokens(fed), rows=len(prompts), scored=scored)


def prompt_work(config: dict, model: str, base: Path, data: Path) -> PromptWork:
    """The prompt work of `model`'s predict job in a run of `config` whose prepared test
    data is in `data` (results/data)."""
    from xlt.data import read_prepared
    from xlt.inference.requests import build_requests, encode_all
    from xlt.jobs import stage_settings
    from xlt.models import ModelSpec, load_tokenizer
    from xlt.prompts import load_template
    from xlt.settings import PredictSettings

    settings = stage_settings(config, "predict", model)
    assert isinstance(settings, PredictSettings)
    items = pd.concat(
        [read_prepared(data / f"{lang}.parquet", split="test") for lang in config["languages"]], ignore_index=True
    )
    templates = {lang: load_template(path) for lang, path in settings.templates.items()}
    requests = [
        request
        for prompt, given in settings.prompts.items()
        for request in build_requests(items, templates, prompt, given["scoring"], given["max_new_tokens"])
    ]
    spec = ModelSpec.from_config(model, config["models"][model])
    return PromptWork.of(encode_all(load_tokenizer(base, spec), spec, requests))


def predict_flop(variant_dir: Path, shape: ModelShape, work: PromptWork) -> tuple[float, dict[str, int]]:
    """FLOP of one predict job (a model variant, every prompt and language) and its token counts."""
    rows = pd.concat([pd.read_parquet(path) for path in sorted(variant_dir.glob("*/*.parquet"))], ignore_index=True)
    generated = int(rows["n_output_tokens"].fillna(0).sum())
    flop = 2 * shape.active_parameters * (work.tokens + generated) + 2 * shape.output_layer * (
        generated + work.rows + work.scored
    )
    return flop, {"prompt_tokens": work.tokens, "generated_tokens": generated, "scored_tokens": work.scored}


def job_times(log: Path) -> list[tuple[str, str, float, float]]:
    """(rule, wildcards, start, end) of every finished job of a Snakemake log, in seconds."""
    started: dict[str, tuple[str, str, float]] = {}
    finished: list[tuple[str, str, float, float]] = []
    stamp: float | None = None
    lines = log.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if re.fullmatch(r"\[\w{3} \w{3} +\d+ [\d:]+ \d{4}\]", line):
            stamp = datetime.strptime(" ".join(line.strip("[]").split()), "%a %b %d %H:%M:%S %Y").timestamp()
        elif match := re.fullmatch(r"(?:local)?rule (\w+):", line):
            if stamp is None:
                raise SystemExit(f"{log}:{number + 1}: a job starts before the log's first time stamp")
            fields = {}
            for body in lines[number + 1 :]:
                if not body.startswith(" "):
                    break
                key, _, value = body.strip().partition(": ")
                fields[key] = value
            started[fields["jobid"]] = (match.group(1), fields.get("wildcards", ""), stamp)
        elif match := re.fullmatch(r"Finished jobid: (\d+) .*", line):
            rule, wildcards, start = started[match.group(1)]
            assert stamp is not None  # set before the job's rule line, which started it
            finished.append((rule, wildcards, start, stamp))
    return finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="results", help="a finished run's results/ folder")
    parser.add_argument(
        "--log", help="the run's Snakemake log (default: the newest under .snakemake/log/ beside --results)"
    )
    parser.add_argument(
        "--cores", type=int, default=os.cpu_count(), help="cores the run had (one single-threaded job on each)"
    )
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"), help="the run's config")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args()
    import torch

    from xlt.config import load_config

    results = Path(args.results)
    config = load_config(args.config)
    log = Path(args.log) if args.log else max((results.resolve().parent / ".snakemake" / "log").glob("*.snakemake.log"))
    torch.set_num_threads(1)
    peak = matmul_peak("float32")

    flop: defaultdict[str, float] = defaultdict(float)
    job_flop: dict[tuple[str, str, str], float] = {}
    for model_dir in sorted((results / "models").iterdir()):
        shape = ModelShape.of(model_folder(model_dir / "base"))
        model = model_dir.name
        for adapter in sorted(path for path in model_dir.iterdir() if (path / "train_log.csv").is_file()):
            source = adapter.name.removeprefix("adapter").lstrip("-")
            job_flop[("finetune", model, source)] = finetune_flop(adapter, shape)
            flop[f"finetune {model}"] += job_flop[("finetune", model, source)]
        work = prompt_work(config, model, model_dir / "base", results / "data")
        for variant_dir in sorted((results / "predictions" / model).iterdir()):
            job_flop[("predict", model, variant_dir.name)], _ = predict_flop(variant_dir, shape, work)
            flop[f"predict {model}"] += job_flop[("predict", model, variant_dir.name)]
    total = sum(flop.values())
    floor = total / (peak * args.cores)

    jobs = job_times(log)
    start, end = min(job[2] for job in jobs), max(job[3] for job in jobs)
    wall = end - start
    lines = [
        f"Machine: {cpu_name()}, {os.cpu_count()} cores; float32 matmul peak {peak / 1e9:.1f} GFLOP/s on one thread.",
        f"Run: {results.resolve()} (log {log.name}), {args.cores} cores.",
        "",
        "| work | TFLOP | floor s |",
        "|---|---|---|",
        *(f"| {name} | {value / 1e12:.2f} | {value / peak / args.cores:.0f} |" for name, value in flop.items()),
        f"| **total** | **{total / 1e12:.2f}** | **{floor:.0f}** |",
        "",
        f"Wall time (first job start to last job end): {wall:.0f} s = **{wall / floor:.2f}x** the floor "
        f"of {floor:.0f} s.",
        "",
        "| job | wildcards | seconds | its floor (one core) s | ratio |",
        "|---|---|---|---|---|",
    ]
    for rule, wildcards, job_start, job_end in sorted(jobs, key=lambda job: job[2]):
        fields = dict(part.split("=", 1) for part in wildcards.split(", ") if "=" in part)
        key = (rule, fields.get("model", ""), fields.get("source") or fields.get("variant") or "")
        if rule == "finetune_control":
            key = ("finetune", fields.get("model", ""), f"ctl-{fields.get('source')}")
        own = job_flop.get(key)
        seconds = job_end - job_start
        ratio = f"{seconds / (own / peak):.2f}" if own else ""
        lines.append(
            f"| {rule} | {wildcards} | {seconds:.0f} | {own / peak:.0f} | {ratio} |"
            if own
            else f"| {rule} | {wildcards} | {seconds:.0f} | | |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
