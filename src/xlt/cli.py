"""The `xlt` command: the study's statistics and answer extraction on predictions
made anywhere, without the workflow engine and without loading a model."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from pathlib import Path

from .errors import XltError, verbose


def _compare(args) -> None:
    from .atomic import write_csv
    from .config import load_config
    from .languages import language_table
    from .scoring import load_predictions
    from .stats import StatsSettings, compare

    config = load_config(args.config)
    items = load_predictions(args.predictions)
    effects, alignment, gains = compare(items, language_table(config), StatsSettings.from_config(config["stats"]))
    out = Path(args.out)
    write_csv(effects, out / "effects.csv")
    write_csv(alignment, out / "alignment.csv")
    write_csv(gains, out / "gains.csv")
    print(f"wrote {out / 'effects.csv'} ({len(effects)} effects), {out / 'alignment.csv'}, {out / 'gains.csv'}")


def _extract(args) -> None:
    from .atomic import atomic_path
    from .extract import extract_choice

    with ExitStack() as files:
        try:
            source = sys.stdin if args.input == "-" else files.enter_context(open(args.input, encoding="utf-8"))
        except FileNotFoundError:
            raise XltError(f"{args.input}: file not found") from None
        # A file output appears whole or not at all: a bad line stops before the rename.
        sink = sys.stdout if args.output == "-" else files.enter_context(open(files.enter_context(atomic_path(args.output)), "w", encoding="utf-8"))
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise XltError(f"{args.input}: line {number}: not JSON ({error.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("output"), str):
                raise XltError(f"{args.input}: line {number}: field output is missing or not text")
            options = record.get("options")
            if options is not None and (not isinstance(options, list) or len(options) != 4):
                raise XltError(f"{args.input}: line {number}: field options must be a list of 4 strings")
            record["parsed_choice"] = extract_choice(record["output"], options)
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xlt", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="show the full traceback on errors (also: XLT_VERBOSE=1)")
    commands = parser.add_subparsers(dest="command", required=True)

    compare = commands.add_parser("compare", help="statistics (effects.csv, alignment.csv) from a predictions folder")
    compare.add_argument("--predictions", required=True, help="folder laid out as {model}/{variant}/{prompt}/{lang}.parquet")
    compare.add_argument("--config", required=True, help="study config (languages, families, stats settings)")
    compare.add_argument("--out", required=True, help="folder to write effects.csv, alignment.csv and gains.csv to")
    compare.set_defaults(run=_compare)

    extract = commands.add_parser("extract", help="add parsed_choice (1-4 or null) to JSON lines with output, options, lang")
    extract.add_argument("input", nargs="?", default="-", help="JSON lines file (default: standard input)")
    extract.add_argument("-o", "--output", default="-", help="where to write (default: standard output)")
    extract.set_defaults(run=_extract)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except XltError as error:
        if args.verbose or verbose():
            raise
        print(f"xlt: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
