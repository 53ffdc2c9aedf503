"""Compare two runs' results/ trees: which files are byte-identical, which differ and how.

How the maintainers check that a change leaves a study's results as they were (a
refactor, a fix that should move no number): run the default study in two fresh clones,
one before and one after, and compare their trees:

    python tools/compare_trees.py BEFORE/results AFTER/results

Every regular file under both trees is compared byte for byte (model weights and
fine-tuning checkpoints are left out: they are inputs of the compared jobs, and their
safetensors headers are not part of the contract). A file that differs is read as a
table where it is one (parquet, csv): the rows are matched on the columns that hold
text, and the report says which columns differ in how many rows, with the largest
numeric difference, and which rows or columns only one side has. A file that only one
tree holds is listed. The exit status is 0 only if every file both trees hold is
byte-identical; `--expect-new` lists files that may exist only in AFTER (new outputs of
a change).
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path

import pandas as pd

LEFT_OUT = ("models/*", "checkpoints/*", "*/.*", ".*")


def files(root: Path) -> set[str]:
    """Regular files under `root`, relative, without the left-out ones."""
    found = set()
    for path in root.rglob("*"):
        relative = path.relative_to(root).as_posix()
        if (
            path.is_file()
            and not path.is_symlink()
            and not any(fnmatch.fnmatch(relative, pattern) for pattern in LEFT_OUT)
        ):
            found.add(relative)
    return found


def read_table(path: Path) -> pd.DataFrame | None:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False)
    return None


def _key_columns(before: pd.DataFrame, after: pd.DataFrame) -> list[str]:
    """The first text columns (in order) that tell every row apart on both sides: a
    changed value in a later text column (a raw output) is then a changed cell, not a
    missing row. Empty when no such columns exist."""
    keys: list[str] = []
    for column in before.columns:
        if column not in after.columns or not all(frame[column].map(type).eq(str).all() for frame in (before, after)):
            continue
        keys.append(column)
        if not before.duplicated(keys).any() and not after.duplicated(keys).any():
            return keys
    return []


def table_differences(before: pd.DataFrame, after: pd.DataFrame) -> list[str]:
    """How two tables differ, a line per kind of difference."""
    lines = []
    only_before = [column for column in before.columns if column not in after.columns]
    only_after = [column for column in after.columns if column not in before.columns]
    if only_before:
        lines.append(f"columns only before: {', '.join(only_before)}")
    if only_after:
        lines.append(f"columns only after: {', '.join(only_after)}")
    keys = _key_columns(before, after)
    if not keys:
        before, after = before.reset_index(names="row"), after.reset_index(names="row")
        keys = ["row"]
    merged = before.merge(after, on=keys, how="outer", suffixes=("_before", "_after"), indicator=True)
    for side, label in (("left_only", "before"), ("right_only", "after")):
        count = int((merged["_merge"] == side).sum())
        if count:
            shown = merged.loc[merged["_merge"] == side, keys].head(3).to_dict("records")
            lines.append(f"{count} rows only {label}, e.g. {shown}")
    both = merged[merged["_merge"] == "both"]
    for column in [column for column in before.columns if column in after.columns and column not in keys]:
        left, right = both[f"{column}_before"], both[f"{column}_after"]
        differs = ~((left == right) | (left.isna() & right.isna()))
        if differs.any():
            numeric = pd.to_numeric(left, errors="coerce"), pd.to_numeric(right, errors="coerce")
            largest = (numeric[0] - numeric[1]).abs()[differs].max()
            extra = f", largest numeric difference {largest:.3g}" if pd.notna(largest) else ""
            lines.append(f"column {column}: {int(differs.sum())} of {len(both)} shared rows differ{extra}")
    return lines or ["same table, different bytes (types, order or metadata)"]


def compare(before: Path, after: Path, expect_new: list[str]) -> tuple[int, list[str]]:
    """(number of shared files that differ or are missing after, report lines)."""
    before_files, after_files = files(before), files(after)
    shared = sorted(before_files & after_files)
    lines, failures = [], 0
    identical = [name for name in shared if (before / name).read_bytes() == (after / name).read_bytes()]
    lines.append(f"{len(identical)} of {len(shared)} files both trees hold are byte-identical")
    for name in shared:
        if name in identical:
            continue
        failures += 1
        lines.append(f"DIFFERS {name}")
        tables = read_table(before / name), read_table(after / name)
        if tables[0] is not None and tables[1] is not None:
            lines += [f"    {line}" for line in table_differences(*tables)]
    for name in sorted(before_files - after_files):
        failures += 1
        lines.append(f"ONLY BEFORE {name}")
    for name in sorted(after_files - before_files):
        expected = any(fnmatch.fnmatch(name, pattern) for pattern in expect_new)
        failures += 0 if expected else 1
        lines.append(f"{'new' if expected else 'ONLY AFTER'} {name}")
    return failures, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--expect-new", nargs="*", default=[], help="glob patterns of files that may exist only after")
    arguments = parser.parse_args(argv)
    for root in (arguments.before, arguments.after):
        if not root.is_dir():
            parser.error(f"{root} is not a folder")
    failures, lines = compare(arguments.before, arguments.after, arguments.expect_new)
    print("\n".join(lines))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
