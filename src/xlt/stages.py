"""One function per workflow stage: files in, files out. The `xlt <stage>` commands
(cli.py), which the rules run, call these with their files and their job's settings
(xlt.settings, parsed from `--settings` and passed unchanged) as keyword arguments, so
every stage also runs (and is tested) without the workflow engine. Model-loading modules are imported inside the
stages that need them, so the model-free stages never import torch."""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO, cast

import pandas as pd

from .atomic import write_csv, write_parquet
from .errors import XltError, verbose
from .languages import language_table
from .logs import logging_to
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
)

logger = logging.getLogger(__name__)


@contextmanager
def log_to(path: str | Path, gpus: int = 0):
    """Send the library's log records (a logging.FileHandler) and this process's stdout
    and stderr (Python's and native libraries', onto the handler's file) to `path`.

    A failure ends the job with exit status 1. An XltError (a problem with the user's
    input: config, data, model files) is one line, in the log and on the terminal;
    anything else is a bug: its traceback goes to the log and one line pointing there
    to the terminal. With XLT_VERBOSE=1 both get the full traceback. A job that asks
    for `gpus` fails at once, in one line, where CUDA is not available.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    failure = None
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handle = cast(TextIO, handler.stream)  # opened at once: FileHandler's delay=False
    saved = os.dup(1), os.dup(2)
    os.dup2(handle.fileno(), 1)
    os.dup2(handle.fileno(), 2)
    try:
        with logging_to(handler):
            if gpus:
                from .models import require_cuda

                require_cuda(gpus)
            yield
    except XltError as error:
        details = traceback.format_exc()
        failure = f"xlt: error: {error}"
        print(details if verbose() else failure, file=handle, flush=True)
    except Exception as error:
        details = traceback.format_exc()
        first_line = (str(error).splitlines() or [""])[0]
        failure = f"xlt: unexpected {type(error).__name__}: {first_line} (traceback in {path})"
        print(details, file=handle, flush=True)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        handler.close()
    if failure is not None:
        print(details if verbose() else failure, file=sys.stderr, flush=True)
        sys.exit(1)


def prepare_data(*, settings: PrepareDataSettings, outputs: list[str]) -> None:
    """Each language's Belebele rows split into train and test, one file per language
    (`outputs`, in the order of `settings.langs`). A staged dataset is read instead of
    the Hub."""
    from .data import DataSource, prepare_languages

    data_config, langs = settings.data, settings.langs
    if settings.staged is not None:
        data_config = {**data_config, "hub_id": settings.staged, "hub_revision": None}
    frames = prepare_languages(
        DataSource.from_config(data_config),
        langs,
        test_fraction=0 if settings.all_test else data_config["test_fraction"],
        seed=data_config["seed"],
        max_test_items=data_config.get("max_test_items"),
        max_train_items=data_config.get("max_train_items"),
    )
    for lang, output in zip(langs, outputs):
        frame = frames[lang].assign(lang=lang)
        write_parquet(frame, output)
        counts = frame["split"].value_counts().to_dict()
        logger.info(f"{lang}: {counts.get('train', 0)} train, {counts.get('test', 0)} test items -> {output}")


def prepare_training(
    *,
    settings: PrepareTrainingSettings,
    data_files: dict[str, str],
    outputs: list[str],
    test_files: list[str],
    checks_out: str,
) -> None:
    """Each source's fine-tuning examples, the same number for every source: the
    Belebele training split (`finetune.data: belebele`) or the source's mapped set,
    checked against the test items of every language (`test_files`, the prepared data);
    what the checks found goes to `checks_out` (JSON, which provenance.json carries).
    `data_files`: source -> its prepared data, for `finetune.data: belebele`; a staged
    Hub training set (`settings.staged`) is read instead of the Hub."""
    import json

    from .atomic import write_text
    from .data import read_prepared
    from .trainsets import (
        TrainingSet,
        belebele_training,
        check_overlap,
        describe_row,
        equalise,
        load_training_set,
        map_fields,
        without_duplicates,
    )

    finetune_config, sources, staged = settings.finetune, settings.sources, settings.staged or {}
    data = finetune_config["data"]
    test = pd.concat([read_prepared(path, split="test") for path in test_files], ignore_index=True)
    frames, checks = {}, {}
    for lang in sources:
        if data == "belebele":
            origin, frame = data_files[lang], belebele_training(data_files[lang], lang)
        else:
            entry = data[lang]
            if lang in staged:
                entry = {**entry, "hub": {**entry["hub"], "id": staged[lang], "revision": None}}
            training_set = TrainingSet.from_config(lang, entry)
            origin, frame = training_set.describe(), map_fields(load_training_set(training_set), training_set)
        read = len(frame)
        frame, dropped = without_duplicates(frame, origin, finetune_config["drop_duplicate_rows"])
        overlap = check_overlap(frame, test, origin, finetune_config["allow_test_overlap"])
        if dropped:
            logger.info(
                f"{lang}: dropped {len(dropped)} of {read} training rows the same as an earlier one "
                f"(finetune.drop_duplicate_rows): {_listed([describe_row(item) for item in dropped])}"
            )
        if overlap:
            rows = [
                f"{describe_row(found['row'])} ({found['by']} of {found['test_item']}, {found['lang']})"
                for found in overlap
            ]
            logger.warning(
                f"{lang}: warning: {len(overlap)} of {len(frame)} training rows are test items "
                f"(finetune.allow_test_overlap): {_listed(rows)}"
            )
        frames[lang] = frame
        checks[lang] = {"origin": origin, "rows_read": read, "duplicates_dropped": dropped, "test_items": overlap}
    kept = equalise(frames, finetune_config["examples"], settings.seed)
    for lang, output in zip(sources, outputs):
        frame = kept[lang]
        write_parquet(frame, output)
        checks[lang]["examples"] = len(frame)
        logger.info(f"{lang}: {len(frame)} training examples (of {len(frames[lang])}) -> {output}")
    write_text(json.dumps(checks, indent=2, ensure_ascii=False) + "\n", checks_out)


def prepare_control(*, settings: PrepareControlSettings, training_file: str, output: str) -> None:
    """A source's format-only control examples (xlt.control): its training examples with
    seeded letters, balanced over A-D and independent of the gold answers, as answers."""
    from .control import control_examples

    training = pd.read_parquet(training_file)
    control = control_examples(training, settings.seed, training_file)
    write_parquet(control, output)
    agree = int((control["correct_answer_num"] == training["correct_answer_num"]).sum())
    counts = ", ".join(
        f"{'ABCD'[k - 1]} {n}" for k, n in sorted(Counter(control["correct_answer_num"].tolist()).items())
    )
    logger.info(f"{len(control)} control examples ({counts}; {agree} agree with the gold answer) -> {output}")


def _listed(names: list[str], shown: int = 10) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def prepare_model(*, name: str, settings: PrepareModelSettings, output: str, threads: int) -> None:
    """Model `name` prepared in `output`: a staged Hub model (xlt.staging) is what the
    manifest points at, or its bfloat16 conversion (xlt.fp8) for a model stored in FP8."""
    from .models import ModelSpec, set_threads
    from .models import prepare_model as prepare

    set_threads(threads)
    started = time.monotonic()
    prepare(ModelSpec.from_config(name, settings.entry()), output, staged=settings.staged, converted=settings.converted)
    logger.info(f"prepared {name} in {time.monotonic() - started:.1f}s")


def stage_model(*, name: str, settings: PrepareModelSettings, output: str) -> None:
    """Download a Hub model at its revision into the staging folder (xlt.staging)."""
    from .staging import HubRepo, stage

    stage(HubRepo(name, settings.hub_id(name), settings.revision, "model", bool(settings.trust_remote_code)), output)


def stage_dataset(*, name: str, settings: StageDatasetSettings, output: str) -> None:
    """Download a Hub data set at its revision into the staging folder."""
    from .staging import HubRepo, stage

    stage(HubRepo(name, settings.id, settings.revision, "dataset"), output)


def convert_fp8(*, name: str, staged: str, output: str) -> None:
    """The staged FP8 checkpoint of model `name` in bfloat16 (xlt.fp8)."""
    from .fp8 import convert_fp8_checkpoint

    started = time.monotonic()
    convert_fp8_checkpoint(staged, output)
    logger.info(f"converted {name} in {time.monotonic() - started:.1f}s")


def finetune(
    *,
    name: str,
    settings: AdapterSettings,
    base_dir: str,
    source_data: str,
    template_file: str,
    adapter_dir: str,
    checkpoint_dir: str,
    threads: int,
) -> None:
    """Model `name`'s LoRA adapter, trained on `source_data` (prepared training
    examples) from the base in `base_dir`. Under `accelerate launch` this runs once per
    GPU, and the job's threads are shared among a node's processes."""
    from . import finetune as ft
    from .data import read_prepared
    from .launch import threads_per_process
    from .models import ModelSpec, set_threads
    from .prompts import load_template

    set_threads(threads_per_process(threads, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    train = read_prepared(source_data, split="train")
    started = time.monotonic()
    ft.finetune(
        base_dir,
        ModelSpec.from_config(name, settings.entry()),
        train,
        load_template(template_file),
        ft.FinetuneSettings.from_config(settings.finetune),
        adapter_dir,
        checkpoint_dir,
        save_steps=settings.finetune["save_steps"],
    )
    if int(os.environ.get("RANK", "0")) == 0:
        logger.info(f"fine-tuned {name} in {time.monotonic() - started:.1f}s -> {adapter_dir}")


def merge(*, name: str, settings: AdapterSettings, base_dir: str, adapter_dir: str, out_dir: str, threads: int) -> None:
    """The adapter in `adapter_dir` merged into the base model, written to `out_dir`."""
    from .finetune import merge_adapter
    from .models import ModelSpec, set_threads

    set_threads(threads)
    merge_adapter(
        base_dir, ModelSpec.from_config(name, settings.entry()), adapter_dir, out_dir, dtype=settings.finetune["dtype"]
    )


def predict(
    *,
    name: str,
    settings: PredictSettings,
    variant: str,
    base_dir: str,
    adapter_dir: str | None,
    data_files: list[str],
    outputs: list[str],
    threads: int,
    fresh: bool = False,
    gpus: int = 0,
) -> None:
    """Predictions of one model variant for every prompt (`settings.prompts`: each one's
    `max_new_tokens` and `scoring`) and language, in every cell (`outputs`, in the
    contract's layout: a prompt fills its paths.JOB_CELLS, the direct prompt the choice
    cell too). An item's prompts share their prompt pass (inference/engine.py).

    `scoring` is "generate" (greedy generation, answer extracted from the text) or
    "loglik" (lm-evaluation-harness's Belebele prompt, the likeliest option letter).
    Each prompt's finished waves are kept in a shard beside its outputs: a killed job
    continues where it stopped, and a job rerun because one prompt's settings changed
    reads the other prompt's results back instead of recomputing them; `fresh` discards
    them first, and everything is computed again. `gpus`: the job's, which vLLM splits
    the model over.
    """
    from .data import read_prepared
    from .inference.loader import open_backend
    from .inference.predictions import prediction_frames
    from .inference.requests import build_requests
    from .inference.shards import discard, shard_path
    from .models import set_threads
    from .paths import JOB_CELLS
    from .prompts import load_template

    prompts = settings.prompts
    by_cell: dict[str, list[str]] = {}
    for path in outputs:
        by_cell.setdefault(Path(path).parent.name, []).append(path)
    written = {cell for prompt in prompts for cell in JOB_CELLS[prompt]}
    if set(by_cell) != written:
        raise XltError(
            f"predict {name} ({variant}): the prompts {', '.join(prompts)} write the cells "
            f"{', '.join(sorted(written))}, the outputs are in {', '.join(sorted(by_cell))}"
        )
    set_threads(threads)
    items = pd.concat([read_prepared(path, split="test") for path in data_files], ignore_index=True)
    langs = list(dict.fromkeys(items["lang"]))
    for cell, paths in by_cell.items():
        named = [Path(path).stem for path in paths]
        if sorted(named) != sorted(langs):
            raise XltError(
                f"predict {name} ({variant}): the outputs of cell {cell} are for {', '.join(named)}, the "
                f"data's languages are {', '.join(langs)}; "
                "give one file per cell and language ({cell}/{lang}.parquet)"
            )
    templates = {lang: load_template(path) for lang, path in settings.templates.items()}
    requests = [
        request
        for prompt, given in prompts.items()
        for request in build_requests(items, templates, prompt, given["scoring"], given["max_new_tokens"])
    ]
    shards = {prompt: shard_path(by_cell[JOB_CELLS[prompt][0]]) for prompt in prompts}
    if fresh:
        logger.info(f"--fresh: discarded {len(discard(list(shards.values())))} shard(s) of earlier runs")
    backend = open_backend(name, settings.model, variant, base_dir, adapter_dir, gpus=gpus)
    started = time.monotonic()
    results = backend.run(requests, resume=shards)
    elapsed = time.monotonic() - started
    frames = prediction_frames(requests, results, name, variant)
    new_tokens = sum(result.n_output_tokens for result in results)
    parsed = ", ".join(f"{cell} {frame['parsed_choice'].notna().mean():.1%}" for cell, frame in frames.items())
    logger.info(
        f"{len(items)} items, {len(requests)} requests in {elapsed:.1f}s ({new_tokens / elapsed:.1f} new "
        f"tokens/s); parse rate {parsed}"
    )
    by_cell_lang = {(cell, lang): rows for cell, frame in frames.items() for lang, rows in frame.groupby("lang")}
    for path in outputs:
        write_parquet(by_cell_lang[(Path(path).parent.name, Path(path).stem)].reset_index(drop=True), path)


def score(
    *, settings: StudySettings, prediction_files: list[str], data_files: list[str], accuracy_out: str, items_out: str
) -> None:
    """Every stored answer re-extracted and scored: the scored items (`items_out`) and
    the accuracy of each cell (`accuracy_out`)."""
    from .choices import DEFAULT_NORMALISATION
    from .data import read_prepared
    from .scoring import accuracy_table, load_prediction_files, rescore

    study = settings.study()
    predictions = load_prediction_files(prediction_files)
    data = pd.concat([read_prepared(path) for path in data_files], ignore_index=True)
    items = rescore(predictions, data, study["prompts"].get("cloze_normalisation", DEFAULT_NORMALISATION))
    changed = int((items["parsed_choice"].fillna(0) != predictions["parsed_choice"].fillna(0)).sum())
    logger.info(f"re-extracted {len(items)} answers ({changed} differ from the predict-time extraction)")
    write_parquet(items, items_out)
    budgets = {
        key.removesuffix("_max_new_tokens"): value
        for key, value in study["prompts"].items()
        if key.endswith("_max_new_tokens")
    }
    write_csv(
        accuracy_table(items, language_table(study), confidence=study["stats"]["confidence"], budgets=budgets),
        accuracy_out,
    )


def compare_items(items: pd.DataFrame, study: dict, allow_missing: bool, source: str, outputs: list):
    """The statistics of scored `items` (from the workflow or from elsewhere) written to
    `outputs` (effects, alignment, gains, notes): an incomplete tree is refused unless
    allowed, and then notes.csv names what was missing. A tree in the old single-source
    layout (variant `ft`) is read as today's, and notes.csv says so (xlt.layout)."""
    from .completeness import check_complete, note_missing
    from .languages import control_sources, source_languages
    from .layout import note_old_layout, read_old_layout
    from .paths import control_variants, study_variants
    from .primary import resolve_primary
    from .stats.compare import write_comparisons
    from .stats.relatedness import effects_tested
    from .stats.settings import StatsSettings
    from .stats.sources import compare_study

    sources = source_languages(study)
    items, old_layout = read_old_layout(items, sources, study_variants(sources, control_sources(study)), source)
    # Every cell the study makes: each source's variant, and the prompt of every gain
    # (direct) and of the primary test, whatever the tree holds.
    prompts = {"direct", resolve_primary(study, study["stats"]["primary"], effects_tested).prompt}
    # A format-only control the tree holds is checked like every variant; one it lacks
    # (older trees) leaves out the rows that read it, which notes.csv names.
    controls = [
        source
        for source, variant in control_variants(control_sources(study)).items()
        if variant in set(items["variant"])
    ]
    variants = study_variants(sources, controls)
    missing = check_complete(items, study["languages"], allow_missing, source, variants=variants, prompts=prompts)
    comparisons = note_old_layout(
        note_missing(compare_study(items, study, StatsSettings.from_config(study["stats"])), missing), old_layout
    )
    write_comparisons(comparisons, *outputs)
    return comparisons


def compare(
    *, settings: StudySettings, items_file: str, effects_out: str, alignment_out: str, gains_out: str, notes_out: str
) -> None:
    """The statistics of the scored items (compare_items), one file each."""
    start = time.perf_counter()
    outputs = [effects_out, alignment_out, gains_out, notes_out]
    comparisons = compare_items(
        pd.read_parquet(items_file), settings.study(), settings.stats["allow_missing_cells"], items_file, outputs
    )
    logger.info(
        f"{len(comparisons.effects)} effects, {len(comparisons.alignment)} alignment statistics in "
        f"{time.perf_counter() - start:.1f}s"
    )


def report(
    *,
    settings: ReportSettings,
    accuracy_file: str,
    effects_file: str,
    alignment_file: str,
    gains_file: str,
    out_dir: str,
    provenance_file: str | None = None,
    notes_file: str | None = None,
    proximity_file: str | None = None,
) -> None:
    import json

    from .report import write_report

    study = settings.study()
    write_report(
        pd.read_csv(accuracy_file),
        pd.read_csv(effects_file),
        pd.read_csv(alignment_file),
        pd.read_csv(gains_file),
        language_table(study),
        study["stats"]["equivalence_margin"],
        out_dir,
        alpha=round(1 - study["stats"]["confidence"], 12),
        recipes=settings.recipes,
        provenance=json.loads(Path(provenance_file).read_text(encoding="utf-8")) if provenance_file else None,
        notes=pd.read_csv(notes_file, keep_default_na=False) if notes_file else None,
        proximity=pd.read_csv(proximity_file) if proximity_file else None,
        proximity_margin=study["stats"]["proximity_margin"],
    )
    logger.info(f"report written to {out_dir}")


def proximity(*, settings: StudySettings, output: str) -> None:
    """results/stats/proximity.csv: how close each target is to each source (xlt.proximity)."""
    from .proximity import proximity_table

    table = proximity_table(settings.study())
    write_csv(table, output)
    logger.info(f"proximity of {table['target'].nunique()} targets to {table['source'].nunique()} sources -> {output}")


def provenance(
    *, settings: ProvenanceSettings, base_dirs: dict[str, str], checkout: str, output: str, training_checks: str
) -> None:
    """results/provenance.json of the config (less how jobs run: xlt.jobs.computed_config),
    the prepared base models (model -> its folder) and what the training rows' checks
    found (prepare_training's JSON)."""
    import json

    from .atomic import write_text
    from .provenance import provenance_record

    try:
        checks = json.loads(Path(training_checks).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise XltError(
            f"{training_checks}: not prepare-training's checks ({type(error).__name__}); run prepare-training again"
        ) from None
    record = provenance_record(settings.config, base_dirs, checkout, checks)
    write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", output)
    logger.info(
        f"provenance of {len(record['models'])} models and {len(record['datasets']['training'])} training "
        f"sets -> {output}"
    )
