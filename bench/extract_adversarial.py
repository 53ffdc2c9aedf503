"""Answer extraction on hostile model outputs: each of tests/faults/adversarial.py's
100 kB outputs (repeated dots, ellipses, answer phrases, long runs of one letter, ...),
with and without options, timed one by one.

    python bench/extract_adversarial.py            # prints each time, the slowest last
    python bench/extract_adversarial.py --size 1000000

Exits 1 when any output takes a second or more (the extractor's patterns are meant to
run in time linear in the output's length)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "faults")]

from adversarial import OPTIONS, SIZE, adversarial_outputs  # noqa: E402

from xlt.extract import extract  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=SIZE, help="characters per output")
    args = parser.parse_args()
    times = []
    for name, text in adversarial_outputs(args.size):
        for options in (None, OPTIONS):
            start = time.perf_counter()
            found = extract(text, options)
            seconds = time.perf_counter() - start
            times.append((seconds, f"{name}{' with options' if options else ''}", found.rule))
            print(f"{seconds:8.3f} s  {times[-1][1]} -> {found.rule}", flush=True)
    slowest = max(times)
    print(
        f"{len(times)} outputs of {args.size} characters; slowest {slowest[0]:.3f} s ({slowest[1]}); "
        f"total {sum(t for t, _, _ in times):.2f} s"
    )
    return 0 if slowest[0] < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
