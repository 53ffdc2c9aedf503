"""The `xlt` command: the study's statistics and answer extraction on predictions
made anywhere, without the workflow engine and without loading a model; and the
model jobs the workflow runs as shell commands (`finetune`, `merge`), which import
torch only when they run."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from pathlib import Path

from .errors import XltError


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
    from .extract import extract_choice

    with ExitStack() as files:
        source = sys.stdin if args.input == "-" else files.enter_context(open(args.input, encoding="utf-8"))
        sink = sys.stdout if args.output == "-" else files.enter_context(open(args.output, "w", encoding="utf-8"))
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


def _model_entry(args) -> dict:
    try:
        entry = json.loads(args.settings)
    except json.JSONDecodeError as error:
        raise XltError(f"--settings: not JSON ({error.msg})") from None
    if not isinstance(entry, dict) or not isinstance(entry.get("finetune"), dict):
        raise XltError("--settings: expected a model's config as a JSON object with its finetune block")
    return entry


def _finetune(args) -> None:
    from .stages import finetune

    finetune(args.model, _model_entry(args), args.base, args.data, args.template, args.out, args.checkpoints, args.threads)


def _merge(args) -> None:
    from .stages import merge

    merge(args.model, _model_entry(args), args.base, args.adapter, args.out, args.threads)


def _model_job(commands, name: str, help: str):
    """A subcommand that loads a model: what the workflow's jobs run (see workflow/rules)."""
    command = commands.add_parser(name, help=help)
    command.add_argument("--model", required=True, help="the model's name (a key of the config's models)")
    command.add_argument("--settings", required=True, help="the model's config entry as JSON (source, finetune block)")
    command.add_argument("--base", required=True, help="the prepared base model folder (results/models/MODEL/base)")
    command.add_argument("--out", required=True, help="folder to write")
    command.add_argument("--threads", type=int, default=1, help="CPU threads (shared among the processes of one node)")
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xlt", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="show the full traceback on errors")
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

    finetune = _model_job(commands, "finetune", "train a LoRA adapter on the source language's train split (resumes a killed run)")
    finetune.add_argument("--data", required=True, help="the source language's prepared data (results/data/LANG.parquet)")
    finetune.add_argument("--template", required=True, help="the source language's prompt template")
    finetune.add_argument("--checkpoints", required=True, help="folder for resumable checkpoints, removed on success")
    finetune.set_defaults(run=_finetune)

    merge = _model_job(commands, "merge", "write base model + adapter merged, for backends that cannot load adapters")
    merge.add_argument("--adapter", required=True, help="the adapter folder (results/models/MODEL/adapter)")
    merge.set_defaults(run=_merge)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except XltError as error:
        if args.verbose:
            raise
        print(f"xlt: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
