"""Every comparison bench/ makes, in one run on one machine, one after another:

    python bench/run_all.py --workdir DIR     # DIR: a finished default run (its results/)

1. bench/inference.py: the engine's direct, CoT and choice passes against the naive
   `model.generate` loop, against llama.cpp on the same GGUF (llama-cpp-python, one
   sequence at a time and in batches: its best batch is named), and the engine's
   log-likelihood scoring against lm-evaluation-harness;
2. bench/finetune.py for each model of the config: fine-tuning tokens per second against a
   padded transformers `Trainer`, on the run's prepared training examples.

Each runs in a process of its own with the same torch threads (one by default, as each job
of the default run) and writes its usual results; then all.md gathers every ratio, with
the CPU, the commit, the time each part took and the load average before and after.
Nothing else should run on the machine meanwhile: the ratios are paired only within each
part. bench/inference.py measures the config's first model. llama-cpp-python must be
installed (`pip install -e '.[bench]'`): without it the llama.cpp rows would be missing
from a run that claims to hold them, so it stops first.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "src"))

from inference import cpu_name  # noqa: E402

from xlt.config import load_config  # noqa: E402

BENCH = Path(__file__).resolve().parent
# The columns of bench/inference.py's rows a reader compares: its ratios, and which
# llama.cpp batch was its best (1 on that row).
INFERENCE_COMPARED = ("speedup_vs_naive", "speedup_vs_separate", "xlt_speedup", "engine_speedup", "best_batch")


def run_part(name: str, command: list[str], log: Path) -> float:
    """Run one part to its end (its output to `log`); its seconds. A failed part stops the run."""
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as stream:
        done = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"{name} exited {done.returncode}: see {log}")
    return time.perf_counter() - started


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return done.stdout.strip() or "unknown"


def inference_table(result: dict) -> str:
    frame = pd.DataFrame(result["rows"])
    columns = ["prompt", "method", "seconds", "flops_share_of_peak"] + [c for c in INFERENCE_COMPARED if c in frame]
    return frame[columns].to_markdown(index=False)


def finetune_table(frames: list[pd.DataFrame]) -> str:
    frame = pd.concat(frames, ignore_index=True)
    columns = ["model", "method", "steps", "tokens", "padding_share", "seconds", "tokens_per_cpu_s", "speedup_cpu"]
    return frame[columns].to_markdown(index=False, floatfmt=".3g")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument("--workdir", required=True, help="a finished default run, whose results/ the benches read")
    parser.add_argument("--items-per-lang", type=int, default=1, help="inference items per language (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every part (default 1)")
    parser.add_argument("--out", default=str(BENCH / "results" / "all"))
    args = parser.parse_args(argv)
    if importlib.util.find_spec("llama_cpp") is None:
        raise SystemExit("llama-cpp-python is not installed: pip install -e '.[bench]' (it builds llama.cpp)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(args.workdir).resolve()
    models = list(load_config(args.config)["models"])
    threads = ["--threads", str(args.threads)]
    load_before = os.getloadavg()
    seconds = {
        "inference": run_part(
            "bench/inference.py",
            [sys.executable, str(BENCH / "inference.py"), "--config", args.config, "--model", models[0]]
            + ["--items-per-lang", str(args.items_per_lang), "--out", str(out), *threads]
            + ["--base", str(workdir / "results" / "models" / models[0] / "base")],
            out / "inference.log",
        )
    }
    for model in models:
        seconds[f"finetune {model}"] = run_part(
            f"bench/finetune.py --model {model}",
            [sys.executable, str(BENCH / "finetune.py"), "--config", args.config, "--model", model]
            + ["--workdir", str(workdir), "--out", str(out / f"finetune-{model}.csv"), *threads],
            out / f"finetune-{model}.log",
        )
    load_after = os.getloadavg()
    inference = json.loads((out / "inference.json").read_text(encoding="utf-8"))
    lines = [
        f"# bench/ in one run: commit {commit()}, {time.strftime('%Y-%m-%d')}",
        "",
        f"CPU: {cpu_name()}, {os.cpu_count()} cores; {args.threads} torch thread(s) in every part; "
        f"load average (1, 5, 15 min) {' '.join(f'{v:.2f}' for v in load_before)} at the start, "
        f"{' '.join(f'{v:.2f}' for v in load_after)} at the end.",
        f"Seconds per part: {', '.join(f'{name} {value:.0f}' for name, value in seconds.items())}.",
        "",
        f"## Inference: {inference['model']}, {inference['items']} items (bench/inference.py)",
        "",
        inference_table(inference),
        "",
        "Agreement:",
        *(f"- {name}: {value:.1%}" for name, value in inference["agreement"].items()),
        "",
        "## Fine-tuning: xlt against a padded Trainer (bench/finetune.py)",
        "",
        finetune_table([pd.read_csv(out / f"finetune-{model}.csv") for model in models]),
        "",
    ]
    (out / "all.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
