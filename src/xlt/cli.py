"""The `xlt` command: the study's statistics and answer extraction on predictions
made anywhere, without the workflow engine and without loading a model; and every
stage of the workflow (`prepare-data`, `prepare-training`, `prepare-control`, `prepare-model`, `finetune`,
`merge`, `predict`, `score`, `compare`, `report`, `proximity`, `provenance`), which its rules run as shell commands with
named arguments. A stage's `--settings` is the JSON of the settings dataclass that
xlt.jobs.stage_settings builds from the config (xlt.settings), parsed back here and passed
unchanged to the stage; model libraries are imported only by the stages that load a model."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from contextlib import ExitStack
from pathlib import Path

from .errors import XltError, verbose
from .logs import logging_to
from .paths import STATS_FILES, VARIANTS, is_variant
from .settings import (
    AdapterSettings,
    PredictSettings,
    PrepareControlSettings,
    PrepareDataSettings,
    PrepareModelSettings,
    PrepareTrainingSettings,
    ProvenanceSettings,
    ReportSettings,
    StageDatasetSettings,
    StudySettings,
    parse_settings,
)


def _compare(args) -> None:
    """From a predictions folder and a config file (predictions made anywhere), or, as
    the workflow runs it, from the scored items and the study settings."""
    from .config import load_config
    from .scoring import choose_cloze, load_predictions
    from .stages import compare_items

    if args.items is not None:
        if args.settings is None or args.predictions is not None or args.config is not None:
            raise XltError(
                "--items goes with --settings (the workflow's compare job), not with --predictions or --config"
            )
        from .stages import compare as compare_stage

        settings = parse_settings(args.settings, StudySettings, "compare")
        _scored_items(args.items)
        effects, alignment, gains, notes = map(str, _stats_files(args.out))
        with _job_log(args):
            compare_stage(
                settings=settings,
                items_file=args.items,
                effects_out=effects,
                alignment_out=alignment,
                gains_out=gains,
                notes_out=notes,
            )
        return
    if args.predictions is None or args.config is None:
        raise XltError("give --predictions and --config (or --items and --settings)")
    config = load_config(args.config)
    items = choose_cloze(load_predictions(args.predictions), config["prompts"]["cloze_normalisation"])
    allow_missing = args.allow_missing or config["stats"]["allow_missing_cells"]
    comparisons = compare_items(items, config, allow_missing, args.predictions, _stats_files(args.out))
    print(
        f"wrote {len(comparisons.effects)} effects and {len(comparisons.alignment)} alignment statistics "
        f"to {args.out} ({', '.join(STATS_FILES.values())})"
    )


def _stats_files(out: str) -> list[Path]:
    return [Path(out) / name for name in STATS_FILES.values()]


def _files(paths: list[str], option: str) -> list[str]:
    """The paths of an option that takes several files: none empty, none given twice
    (a file read twice counts its rows twice; one written twice keeps the last)."""
    for path in paths:
        if not path.strip():
            raise XltError(f"{option}: an empty path; give a file")
    seen = [os.path.normpath(path) for path in paths]
    repeated = next((path for path, normal in zip(paths, seen) if seen.count(normal) > 1), None)
    if repeated is not None:
        raise XltError(
            f"{option}: {repeated} is given {seen.count(os.path.normpath(repeated))} times; give each file once"
        )
    return paths


def _one_each(names: list[str], paths: list[str], option: str, what: str, kind: str = "files") -> dict[str, str]:
    """Name -> its path, one path per name in the names' order; a path named after
    another of the names (results/data/heb_Hebr.parquet in arb_Arab's place) is out of
    order."""
    _files(paths, option)
    if len(paths) != len(names):
        raise XltError(
            f"{option}: {len(paths)} {kind} for {len(names)} {what} ({', '.join(names)}); give one for "
            "each, in that order"
        )
    for name, path in zip(names, paths):
        stem = Path(path).name.removesuffix(".parquet")
        if stem != name and stem in names:
            raise XltError(
                f"{option}: {path} is in {name}'s place; give one for each of the {what} in the order "
                f"{', '.join(names)}"
            )
    return dict(zip(names, paths))


def _scored_items(path: str) -> None:
    """`compare --items`: a readable table of scored items, or one line saying why not."""
    from .paths import PREDICTION_COLUMNS
    from .scoring import _read

    missing = [column for column in PREDICTION_COLUMNS if column not in _read(_existing(path, "--items")).columns]
    if missing:
        raise XltError(
            f"--items {path}: not scored items (results/scores/items.parquet): no column {', '.join(missing)}"
        )


def _existing(path: str, option: str) -> str:
    """A file the command reads, or one line saying it is not there."""
    if not Path(path).is_file():
        raise XltError(f"{option} {path}: no such file" + (" (a folder)" if Path(path).is_dir() else ""))
    return path


def _extract(args) -> None:
    if args.options is not None and args.text is None:
        raise XltError("--options goes with --text; JSON lines carry their own options")
    if args.data is not None and not args.input.endswith(".parquet"):
        raise XltError("--data goes with a predictions .parquet input; JSON lines carry their own options")
    if (
        args.output
        and args.output.endswith(".parquet")
        and (args.text is not None or not args.input.endswith(".parquet"))
    ):
        raise XltError(
            f"-o {args.output}: JSON lines are written as JSON lines; a .parquet output goes with a "
            "predictions .parquet input"
        )
    if args.text is not None:
        _extract_text(args)
    elif args.input.endswith(".parquet"):
        _extract_predictions(args)
    else:
        _extract_json_lines(args)


def _extract_text(args) -> None:
    from .extract import extract

    if args.options is not None and len(args.options) != 4:
        raise XltError(f"--options takes the 4 option texts, not {len(args.options)}")
    found = extract(args.text, args.options)
    record = {"output": args.text, "options": args.options, "parsed_choice": found.choice, "rule": found.rule}
    _write_lines([_json_line(record)], args.output)


def _numbered_lines(source, name: str):
    """(number, text) of each line of a binary stream, decoded one by one so bytes that
    are not UTF-8 name their line. Lines end at LF, CRLF or CR, as data.read_jsonl reads
    them (U+2028 inside a JSON string is text)."""
    numbered = enumerate((line for chunk in source for line in _split_at_line_ends(chunk)), start=1)
    for number, line in numbered:
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise XltError(f"{name}: line {number}: not UTF-8 text; save the file as UTF-8") from None
        yield number, line


def _split_at_line_ends(chunk):
    """The lines of one chunk a stream yields (text up to and with its LF): a CRLF is one
    line end, and a CR alone ends a line too."""
    lf, cr = (b"\n", b"\r") if isinstance(chunk, bytes) else ("\n", "\r")
    return chunk.removesuffix(lf).removesuffix(cr).split(cr) if chunk.endswith(lf) else chunk.split(cr)


def _json_line(record: dict) -> str:
    """One JSON line, non-ASCII text as itself; a lone surrogate (half a character,
    as an escape in the input or an undecodable byte of --text) stays an escape."""
    line = json.dumps(record, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(record)
    return line


def _extract_json_lines(args) -> None:
    from .extract import ANSWER_WORDS, extract_choice
    from .jsonline import parse_json_line

    with ExitStack() as files:
        source = (
            getattr(sys.stdin, "buffer", sys.stdin)
            if args.input == "-"
            else files.enter_context(_open_input(args.input))
        )
        lines = []
        for number, line in _numbered_lines(source, args.input):
            if not line.strip():
                continue
            record = parse_json_line(line, f"{args.input}: line {number}")
            if not isinstance(record, dict) or not isinstance(record.get("output"), str):
                raise XltError(f"{args.input}: line {number}: field output is missing or not text")
            options = record.get("options")
            if options is not None and not (
                isinstance(options, list) and len(options) == 4 and all(isinstance(o, str) for o in options)
            ):
                raise XltError(f"{args.input}: line {number}: field options must be a list of 4 strings (or absent)")
            if "lang" in record and record["lang"] not in ANSWER_WORDS:
                raise XltError(
                    f"{args.input}: line {number}: field lang is {record['lang']!r}, not a language the "
                    "extractor has words for "
                    f"({', '.join(ANSWER_WORDS)}); omit it, or add the language to ANSWER_WORDS in src/xlt/extract.py"
                )
            record["parsed_choice"] = extract_choice(record["output"], options)
            lines.append(_json_line(record))
    _write_lines(lines, args.output)


def _extract_predictions(args) -> None:
    """A predictions file of the contract, re-extracted from raw_output; `--data` (the
    prepared data) supplies the options, so quoted option texts count."""
    import pandas as pd

    from .atomic import write_parquet
    from .data import read_prepared
    from .scoring import load_prediction_files, rescore

    path = Path(args.input)
    if not path.is_file():
        raise XltError(f"{path}: predictions file not found")
    predictions = load_prediction_files([path])
    files = []
    for given in map(Path, args.data or []):
        found = sorted(given.glob("*.parquet")) if given.is_dir() else [given] if given.is_file() else []
        if not found:
            raise XltError(
                f"--data {given}: no prepared data there; give results/data/{{lang}}.parquet files or their folder"
            )
        files += found
    data = pd.concat([read_prepared(file) for file in files], ignore_index=True) if files else None
    rescored = rescore(predictions, data)
    if args.output.endswith(".parquet"):
        write_parquet(rescored, args.output)
    else:
        _write_lines(rescored.to_json(orient="records", lines=True, force_ascii=False).splitlines(), args.output)


def _open_input(path: str):
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise XltError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise XltError(f"{path}: is a folder, not a JSON-lines file") from None


def _write_lines(lines: list[str], output: str) -> None:
    text = "".join(line + "\n" for line in lines)
    if output == "-":
        sys.stdout.write(text)
    else:
        from .atomic import write_text

        write_text(text, output)


def _job_log(args):
    """The stage's output to its log (--log), failures as one line on the terminal too
    (stages.log_to); without --log, the terminal."""
    from contextlib import nullcontext

    from .stages import log_to

    return log_to(args.log, gpus=getattr(args, "gpus", 0)) if args.log else nullcontext()


def _prepare_data(args) -> None:
    from .stages import prepare_data

    settings = parse_settings(args.settings, PrepareDataSettings, "prepare_data")
    outputs = _one_each(settings.langs, args.out, "--out", "languages")
    with _job_log(args):
        prepare_data(settings=settings, outputs=list(outputs.values()))


def _prepare_training(args) -> None:
    from .stages import prepare_training

    settings = parse_settings(args.settings, PrepareTrainingSettings, "prepare_training")
    sources = settings.sources
    belebele = _one_each(sources, args.belebele, "--belebele", "source languages") if args.belebele is not None else {}
    if settings.finetune.get("data") == "belebele" and not belebele:
        raise XltError(
            "--belebele: finetune.data is belebele, so each source's prepared data is needed, in the sources' order"
        )
    outputs = _one_each(sources, args.out, "--out", "source languages")
    if os.path.normpath(args.checks) in map(os.path.normpath, outputs.values()):
        raise XltError(f"--checks {args.checks}: is also given as --out; write the checks to a file of their own")
    with _job_log(args):
        prepare_training(
            settings=settings,
            data_files=belebele,
            outputs=list(outputs.values()),
            test_files=_files(args.test_data, "--test-data"),
            checks_out=args.checks,
        )


def _prepare_control(args) -> None:
    from .stages import prepare_control

    settings = parse_settings(args.settings, PrepareControlSettings, "prepare_control")
    with _job_log(args):
        prepare_control(settings=settings, training_file=_existing(args.data, "--data"), output=args.out)


def _provenance(args) -> None:
    from .stages import provenance

    settings = parse_settings(args.settings, ProvenanceSettings, "provenance")
    models = list(settings.config.get("models", {}))
    base = _one_each(models, args.base, "--base", "models", kind="folders")
    training_checks = _existing(args.training_checks, "--training-checks")
    with _job_log(args):
        provenance(
            settings=settings, base_dirs=base, checkout=args.checkout, output=args.out, training_checks=training_checks
        )


def _prepare_model(args) -> None:
    from .stages import prepare_model

    settings = parse_settings(args.settings, PrepareModelSettings, "prepare_model")
    if sum(value is not None for value in (settings.id, settings.path, settings.package)) != 1:
        raise XltError("--settings: the model's source needs exactly one of id, path, package")
    with _job_log(args):
        prepare_model(name=args.model, settings=settings, output=args.out, threads=args.threads)


def _stage_model(args) -> None:
    from .stages import stage_model

    settings = parse_settings(args.settings, PrepareModelSettings, "stage_model")
    settings.hub_id(args.model)
    with _job_log(args):
        stage_model(name=args.model, settings=settings, output=args.out)


def _stage_dataset(args) -> None:
    from .stages import stage_dataset

    settings = parse_settings(args.settings, StageDatasetSettings, "stage_dataset")
    if not isinstance(settings.id, str):
        raise XltError('--settings: expected the data set\'s Hub id and revision, as {"id": ..., "revision": ...}')
    with _job_log(args):
        stage_dataset(name=args.dataset, settings=settings, output=args.out)


def _convert_fp8(args) -> None:
    from .stages import convert_fp8

    if not (Path(args.staged) / "config.json").is_file():
        raise XltError(f"--staged {args.staged}: no config.json there; not a staged checkpoint")
    with _job_log(args):
        convert_fp8(name=args.model, staged=args.staged, output=args.out)


def _finetune(args) -> None:
    from .stages import finetune

    settings = parse_settings(args.settings, AdapterSettings, "finetune")
    finetune(
        name=args.model,
        settings=settings,
        base_dir=args.base,
        source_data=args.data,
        template_file=args.template,
        adapter_dir=args.out,
        checkpoint_dir=args.checkpoints,
        threads=args.threads,
    )


def _merge(args) -> None:
    from .stages import merge

    settings = parse_settings(args.settings, AdapterSettings, "merge")
    with _job_log(args):
        merge(
            name=args.model,
            settings=settings,
            base_dir=args.base,
            adapter_dir=args.adapter,
            out_dir=args.out,
            threads=args.threads,
        )


def _predict(args) -> None:
    from .stages import predict

    settings = parse_settings(args.settings, PredictSettings, "predict")
    _files(args.data, "--data")
    _files(args.out, "--out")
    with _job_log(args):
        predict(
            name=args.model,
            settings=settings,
            variant=args.variant,
            base_dir=args.base,
            adapter_dir=args.adapter,
            data_files=args.data,
            outputs=args.out,
            threads=args.threads,
            fresh=args.fresh or os.environ.get("XLT_FRESH", "") not in ("", "0"),
            gpus=args.gpus,
        )


def _score(args) -> None:
    from .stages import score

    settings = parse_settings(args.settings, StudySettings, "score")
    predictions, data = _files(args.predictions, "--predictions"), _files(args.data, "--data")
    if os.path.normpath(args.accuracy) == os.path.normpath(args.items):
        raise XltError(f"--accuracy and --items: both {args.accuracy}; give each table a file of its own")
    with _job_log(args):
        score(
            settings=settings,
            prediction_files=predictions,
            data_files=data,
            accuracy_out=args.accuracy,
            items_out=args.items,
        )


def _report(args) -> None:
    from .stages import report

    settings = parse_settings(args.settings, ReportSettings, "report")
    tables = {
        f"{name}_file": _existing(getattr(args, name), f"--{name}")
        for name in ("accuracy", "effects", "alignment", "gains")
    }
    provenance = _existing(args.provenance, "--provenance") if args.provenance else None
    notes = _existing(args.notes, "--notes") if args.notes else None
    proximity = _existing(args.proximity, "--proximity") if args.proximity else None
    with _job_log(args):
        report(
            settings=settings,
            **tables,
            out_dir=args.out,
            provenance_file=provenance,
            notes_file=notes,
            proximity_file=proximity,
        )


def _proximity(args) -> None:
    from .stages import proximity

    settings = parse_settings(args.settings, StudySettings, "proximity")
    with _job_log(args):
        proximity(settings=settings, output=args.out)


def _variant(name: str) -> str:
    if not is_variant(name):
        raise argparse.ArgumentTypeError(
            f"{name!r} is not one of {', '.join(VARIANTS)}, ft-<source language> or ctl-<source "
            "language>, e.g. ft-arb_Arab"
        )
    return name


def _stage(commands, name: str, help: str, run, settings: str, log: bool = True):
    """A workflow stage's subcommand, with the arguments every stage has. Fine-tuning
    has no --log: under `accelerate launch` its processes share the shell's redirect."""
    command = commands.add_parser(name, help=help)
    command.add_argument(
        "--settings", required=True, help=f"{settings}, as JSON (what xlt.jobs.stage_settings builds from the config)"
    )
    if log:
        command.add_argument("--log", help="file to write the stage's output to (default: the terminal)")
    command.set_defaults(run=run)
    return command


def _model_job(commands, name: str, help: str, run, log: bool = True):
    """A subcommand that loads a model: what the workflow's model jobs run."""
    command = _stage(commands, name, help, run, "the model's config entry (source, and the block of this stage)", log)
    command.add_argument("--model", required=True, help="the model's name (a key of the config's models)")
    command.add_argument("--base", required=True, help="the prepared base model folder (results/models/MODEL/base)")
    command.add_argument("--threads", type=int, default=1, help="CPU threads (shared among the processes of one node)")
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xlt", description=__doc__)
    parser.add_argument(
        "--verbose", action="store_true", help="show the full traceback on errors (also: XLT_VERBOSE=1)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    compare = commands.add_parser(
        "compare", help="statistics (effects.csv, alignment.csv, gains.csv, notes.csv) from a predictions folder"
    )
    compare.add_argument("--predictions", help="folder laid out as {model}/{variant}/{prompt}/{lang}.parquet")
    compare.add_argument("--config", help="study config (languages, families, stats settings)")
    compare.add_argument(
        "--items",
        help="instead of --predictions: the scored items (results/scores/items.parquet), as the workflow runs it",
    )
    compare.add_argument(
        "--settings",
        help="with --items: the study settings as JSON (what xlt.jobs.stage_settings builds from the config)",
    )
    compare.add_argument(
        "--out", required=True, help="folder to write effects.csv, alignment.csv, gains.csv and notes.csv to"
    )
    compare.add_argument(
        "--allow-missing",
        action="store_true",
        help="compare a tree with missing or incomplete cells (model x variant x prompt x language); notes.csv "
        "names them in every row they affect",
    )
    compare.add_argument("--log", help="with --items: file to write the stage's output to")
    compare.set_defaults(run=_compare)

    extract = commands.add_parser(
        "extract",
        help="add parsed_choice (1-4 or null) to JSON lines with output, options, lang; or re-extract a "
        "predictions parquet; or read one --text",
    )
    extract.add_argument(
        "input",
        nargs="?",
        default="-",
        help="JSON lines file, or a predictions .parquet (default: JSON lines on standard input)",
    )
    extract.add_argument(
        "-o",
        "--output",
        default="-",
        help="where to write: JSON lines, or a .parquet for a predictions input (default: standard output)",
    )
    extract.add_argument(
        "--data",
        nargs="+",
        metavar="PATH",
        help="prepared data (results/data/{lang}.parquet files or their folder): the options of a predictions input",
    )
    extract.add_argument(
        "--text", help="extract from this text alone; prints its parsed_choice and the rule that decided"
    )
    extract.add_argument("--options", nargs="+", metavar="OPTION", help="with --text: the four option texts")
    extract.set_defaults(run=_extract)

    prepare_data = _stage(
        commands,
        "prepare-data",
        "split the Belebele rows of every language into train and test",
        _prepare_data,
        "the data settings and languages",
    )
    prepare_data.add_argument(
        "--out", nargs="+", required=True, help="one results/data/LANG.parquet per language, in the settings' order"
    )

    prepare_training = _stage(
        commands,
        "prepare-training",
        "each source language's fine-tuning examples, the same number for every source",
        _prepare_training,
        "the finetune block, source languages and seed",
    )
    prepare_training.add_argument(
        "--belebele",
        nargs="+",
        help="with finetune.data belebele: each source's prepared data (results/data/LANG.parquet), in the "
        "sources' order",
    )
    prepare_training.add_argument(
        "--test-data",
        nargs="+",
        required=True,
        help="every language's prepared data (results/data/LANG.parquet): no training row may be one of its test items",
    )
    prepare_training.add_argument(
        "--out",
        nargs="+",
        required=True,
        help="one results/data/train/SOURCE.parquet per source, in the sources' order",
    )
    prepare_training.add_argument(
        "--checks",
        required=True,
        help="what the checks of the training rows found, as JSON (results/data/train/checks.json)",
    )

    prepare_control = _stage(
        commands,
        "prepare-control",
        "a source's format-only control examples: its training examples with seeded letters, balanced "
        "over A-D, as answers",
        _prepare_control,
        "the seed",
    )
    prepare_control.add_argument(
        "--data", required=True, help="the source's training examples (results/data/train/SOURCE.parquet)"
    )
    prepare_control.add_argument(
        "--out", required=True, help="the control examples to write (results/data/train/control-SOURCE.parquet)"
    )

    prepare_model = _stage(
        commands,
        "prepare-model",
        "a loadable base model: an embedded GGUF converted, or a manifest",
        _prepare_model,
        "the model's source",
    )
    prepare_model.add_argument("--model", required=True, help="the model's name (a key of the config's models)")
    prepare_model.add_argument("--out", required=True, help="folder to write (results/models/MODEL/base)")
    prepare_model.add_argument("--threads", type=int, default=1, help="CPU threads")

    stage_model = _stage(
        commands,
        "stage-model",
        "download a Hub model at its revision into the staging folder (on a node with the network)",
        _stage_model,
        "the model's source",
    )
    stage_model.add_argument("--model", required=True, help="the model's name (a key of the config's models)")
    stage_model.add_argument("--out", required=True, help="folder to write (staging.dir/models/MODEL)")

    stage_dataset = _stage(
        commands,
        "stage-dataset",
        "download a Hub data set at its revision into the staging folder (on a node with the network)",
        _stage_dataset,
        "its Hub id and revision",
    )
    stage_dataset.add_argument("--dataset", required=True, help="its staged name (belebele, training-SOURCE)")
    stage_dataset.add_argument("--out", required=True, help="folder to write (staging.dir/datasets/NAME)")

    convert = commands.add_parser(
        "convert-fp8", help="a staged block-scaled FP8 checkpoint (DeepSeek-V3) de-quantized to bfloat16, once"
    )
    convert.add_argument("--model", required=True, help="the model's name (a key of the config's models)")
    convert.add_argument("--staged", required=True, help="the staged FP8 checkpoint (staging.dir/models/MODEL)")
    convert.add_argument("--out", required=True, help="folder to write (staging.dir/converted/MODEL)")
    convert.add_argument("--log", help="file to write the stage's output to (default: the terminal)")
    convert.set_defaults(run=_convert_fp8)

    finetune = _model_job(
        commands,
        "finetune",
        "train a LoRA adapter on one source language's training examples (resumes a killed run)",
        _finetune,
        log=False,
    )
    finetune.add_argument(
        "--data", required=True, help="the source language's training examples (results/data/train/SOURCE.parquet)"
    )
    finetune.add_argument("--template", required=True, help="the source language's prompt template")
    finetune.add_argument("--out", required=True, help="folder to write the adapter to")
    finetune.add_argument("--checkpoints", required=True, help="folder for resumable checkpoints, removed on success")

    merge = _model_job(
        commands, "merge", "write base model + adapter merged, for backends that cannot load adapters", _merge
    )
    merge.add_argument("--adapter", required=True, help="the adapter folder (results/models/MODEL/adapter-SOURCE)")
    merge.add_argument("--out", required=True, help="folder to write the merged model to")

    predict = _stage(
        commands,
        "predict",
        "predictions of one model variant, every prompt and language",
        _predict,
        "the model's inference settings and prompts",
    )
    predict.add_argument("--model", required=True, help="the model's name (a key of the config's models)")
    predict.add_argument(
        "--variant",
        required=True,
        type=_variant,
        help="base, ft-SOURCE (the fine-tuned variant of a source language) or ctl-SOURCE (its format-only control)",
    )
    predict.add_argument("--base", required=True, help="the prepared base model folder (results/models/MODEL/base)")
    predict.add_argument("--adapter", help="the adapter folder, for a fine-tuned variant")
    predict.add_argument("--data", nargs="+", required=True, help="the prepared data of every language")
    predict.add_argument(
        "--out", nargs="+", required=True, help="one predictions file per cell and language ({cell}/{lang}.parquet)"
    )
    predict.add_argument("--threads", type=int, default=1, help="CPU threads")
    predict.add_argument(
        "--gpus", type=int, default=0, help="GPUs the job was given: it stops at once where CUDA is not available"
    )
    predict.add_argument(
        "--fresh",
        action="store_true",
        help="discard the results earlier runs kept (each prompt's .predict.jsonl) and compute everything "
        "again (also: XLT_FRESH=1, which jobs inherit)",
    )

    score = _stage(
        commands,
        "score",
        "re-extract every answer and score it: accuracy per cell, items for compare",
        _score,
        "the study settings",
    )
    score.add_argument(
        "--predictions", nargs="+", required=True, help="predictions files ({model}/{variant}/{prompt}/{lang}.parquet)"
    )
    score.add_argument("--data", nargs="+", required=True, help="the prepared data of every language")
    score.add_argument("--accuracy", required=True, help="accuracy table to write (results/scores/accuracy.csv)")
    score.add_argument("--items", required=True, help="scored items to write (results/scores/items.parquet)")

    report = _stage(
        commands,
        "report",
        "summary.md, plots and table pages from the scores and statistics",
        _report,
        "the study settings",
    )
    report.add_argument("--accuracy", required=True, help="results/scores/accuracy.csv")
    report.add_argument("--effects", required=True, help="results/stats/effects.csv")
    report.add_argument("--alignment", required=True, help="results/stats/alignment.csv")
    report.add_argument("--gains", required=True, help="results/stats/gains.csv")
    report.add_argument("--provenance", help="results/provenance.json, summarised in summary.md")
    report.add_argument(
        "--notes", help="results/stats/notes.csv: what summary.md says of knowledge scores at chance or one label"
    )
    report.add_argument(
        "--proximity",
        help="results/stats/proximity.csv: the gain against proximity plot and the fitted slopes in summary.md",
    )
    report.add_argument("--out", required=True, help="folder to write the report to (results/report)")

    proximity = _stage(
        commands,
        "proximity",
        "results/stats/proximity.csv: genealogical proximity, same script and distance of every target to every source",
        _proximity,
        "the study settings",
    )
    proximity.add_argument("--out", required=True, help="file to write (results/stats/proximity.csv)")

    provenance = _stage(
        commands,
        "provenance",
        "results/provenance.json: revisions, hashes and versions of what the numbers come from",
        _provenance,
        "the config",
    )
    provenance.add_argument(
        "--base",
        nargs="+",
        required=True,
        help="each model's prepared base folder (results/models/MODEL/base), in the config's order",
    )
    provenance.add_argument(
        "--training-checks",
        required=True,
        help="prepare-training's checks (results/data/train/checks.json), recorded with each training set",
    )
    provenance.add_argument("--checkout", required=True, help="the workflow's checkout, whose git commit is recorded")
    provenance.add_argument("--out", required=True, help="file to write (results/provenance.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with logging_to(logging.StreamHandler(sys.stderr)):  # a job's --log replaces it with its file
            args.run(args)
    except XltError as error:
        if args.verbose or verbose():
            raise
        print(f"xlt: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
