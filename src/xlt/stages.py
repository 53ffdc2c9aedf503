"""One function per workflow stage: files in, files out. Snakemake's scripts call these
with their inputs and params and nothing else, so every stage also runs (and is
tested) without the workflow engine. Model-loading modules are imported inside the
stages that need them, so the model-free stages never import torch."""

from __future__ import annotations

import os
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from .atomic import write_csv, write_parquet
from .errors import XltError, verbose
from .languages import language_table


@contextmanager
def log_to(path: str | Path, gpus: int = 0):
    """Send this process's stdout and stderr (Python's and native libraries') to `path`.

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
    with open(path, "w", buffering=1, encoding="utf-8") as handle:
        saved = os.dup(1), os.dup(2)
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
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
    if failure is not None:
        print(details if verbose() else failure, file=sys.stderr, flush=True)
        sys.exit(1)


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def prepare_data(data_config: dict, langs: list[str], outputs: list[str]) -> None:
    from .data import DataSource, prepare_languages

    frames = prepare_languages(
        DataSource.from_config(data_config),
        langs,
        test_fraction=data_config["test_fraction"],
        seed=data_config["seed"],
        max_test_items=data_config.get("max_test_items"),
        max_train_items=data_config.get("max_train_items"),
    )
    for lang, output in zip(langs, outputs):
        frame = frames[lang].assign(lang=lang)
        write_parquet(frame, output)
        counts = frame["split"].value_counts().to_dict()
        _say(f"{lang}: {counts.get('train', 0)} train, {counts.get('test', 0)} test items -> {output}")


def prepare_model(name: str, entry: dict, output: str, threads: int) -> None:
    from .models import ModelSpec, set_threads
    from .models import prepare_model as prepare

    set_threads(threads)
    started = time.monotonic()
    prepare(ModelSpec.from_config(name, entry), output, log=_say)
    _say(f"prepared {name} in {time.monotonic() - started:.1f}s")


def finetune(name: str, entry: dict, base_dir: str, source_data: str, template_file: str, adapter_dir: str, checkpoint_dir: str, threads: int) -> None:
    """`entry`: the model's config with its `finetune` block. Under `accelerate launch`
    this runs once per GPU, and the job's threads are shared among a node's processes."""
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
        ModelSpec.from_config(name, entry),
        train,
        load_template(template_file),
        ft.FinetuneSettings.from_config(entry["finetune"]),
        adapter_dir,
        checkpoint_dir,
        save_steps=entry["finetune"]["save_steps"],
        log=_say,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        _say(f"fine-tuned {name} in {time.monotonic() - started:.1f}s -> {adapter_dir}")


def merge(name: str, entry: dict, base_dir: str, adapter_dir: str, out_dir: str, threads: int) -> None:
    from .finetune import merge_adapter
    from .models import ModelSpec, set_threads

    set_threads(threads)
    merge_adapter(base_dir, ModelSpec.from_config(name, entry), adapter_dir, out_dir, dtype=entry["finetune"]["dtype"], log=_say)


def predict(
    name: str,
    entry: dict,
    variant: str,
    prompt: str,
    base_dir: str,
    adapter_dir: str | None,
    data_files: list[str],
    template_files: dict[str, str],
    max_new_tokens: int,
    scoring: str,
    outputs: list[str],
    threads: int,
) -> None:
    """Predictions of one model variant with one prompt for every language.

    `scoring` is "generate" (greedy generation, answer extracted from the text) or
    "loglik" (lm-evaluation-harness's Belebele prompt, the likeliest option letter).
    Generation is resumable: finished batches go to a partial shard beside the outputs,
    which a rerun of a killed job reads back and a finished job removes.
    """
    from . import __version__
    from .data import read_prepared
    from .inference import build_requests, generate, predictions_frame
    from .inference import fingerprint as engine_fingerprint
    from .inference.engine import resolve_batch_size
    from .inference.shards import Shard, directory_signature, partial_path, run_fingerprint
    from .models import ModelSpec, load_tokenizer, set_threads, uses_chat_template
    from .prompts import load_template

    set_threads(threads)
    spec = ModelSpec.from_config(name, entry)
    settings = entry["inference"]
    items = pd.concat([read_prepared(path, split="test") for path in data_files], ignore_index=True)
    tokenizer = load_tokenizer(base_dir, spec)
    shard = None
    if scoring == "loglik":
        frame = _loglik_predictions(spec, base_dir, adapter_dir, items, tokenizer, settings, variant)
    else:
        chat = uses_chat_template(spec, tokenizer)
        templates = {lang: load_template(path) for lang, path in template_files.items()}
        requests = build_requests(items, templates, prompt, tokenizer, chat, spec.chat_template_kwargs)
        started = time.monotonic()
        if settings["backend"] == "vllm":
            from .inference.vllm import generate_vllm

            generations = generate_vllm(spec, base_dir, adapter_dir, entry, tokenizer, requests, max_new_tokens)
        else:
            model = _load_for_inference(spec, base_dir, adapter_dir, settings, variant)
            batch_size = resolve_batch_size(settings["batch_size"], model)
            fingerprint = run_fingerprint(
                version=__version__,
                engine=engine_fingerprint(),
                entry=entry,
                variant=variant,
                prompt=prompt,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                base=directory_signature(base_dir),
                adapter=directory_signature(adapter_dir),
                requests=[(r.item_id, r.input_ids, r.completion_prefix) for r in requests],
            )
            shard = Shard(partial_path(outputs), fingerprint)
            generations = generate(model, tokenizer, requests, max_new_tokens, batch_size, shard=shard, log=_say)
        elapsed = time.monotonic() - started
        frame = predictions_frame(requests, generations, name, variant, prompt)
        _say(
            f"{len(frame)} items in {elapsed:.1f}s ({len(frame) / elapsed:.2f} items/s, "
            f"{frame['n_output_tokens'].sum() / elapsed:.1f} new tokens/s); parse rate {frame['parsed_choice'].notna().mean():.1%}"
        )
    by_lang = dict(tuple(frame.groupby("lang")))
    for path in outputs:
        write_parquet(by_lang[Path(path).stem].reset_index(drop=True), path)
    if shard is not None:
        shard.remove()


def _load_for_inference(spec, base_dir: str, adapter_dir: str | None, settings: dict, variant: str):
    from .models import load_model

    started = time.monotonic()
    model = load_model(base_dir, spec, adapter_dir=adapter_dir, dtype=settings["dtype"])
    _say(f"loaded {spec.name} ({variant}) on {model.device} in {time.monotonic() - started:.1f}s")
    return model


def _loglik_predictions(spec, base_dir: str, adapter_dir: str | None, items: pd.DataFrame, tokenizer, settings: dict, variant: str) -> pd.DataFrame:
    from .inference.engine import resolve_batch_size
    from .inference.loglik import build_choice_requests, loglik_frame, score_choices

    if settings["backend"] != "hf":
        raise XltError(f"model {spec.name}: prompts.direct_scoring 'loglik' needs inference.backend 'hf', not {settings['backend']!r}")
    model = _load_for_inference(spec, base_dir, adapter_dir, settings, variant)
    requests = build_choice_requests(items, tokenizer)
    started = time.monotonic()
    scores = score_choices(model, tokenizer, requests, resolve_batch_size(settings["batch_size"], model))
    elapsed = time.monotonic() - started
    _say(f"scored {len(requests)} items x 4 choices in {elapsed:.1f}s ({len(requests) / elapsed:.2f} items/s)")
    return loglik_frame(requests, scores, spec.name, variant)


def score(prediction_files: list[str], data_files: list[str], study: dict, accuracy_out: str, items_out: str) -> None:
    from .data import read_prepared
    from .scoring import accuracy_table, load_prediction_files, rescore

    predictions = load_prediction_files(prediction_files)
    data = pd.concat([read_prepared(path) for path in data_files], ignore_index=True)
    items = rescore(predictions, data)
    changed = int((items["parsed_choice"].fillna(0) != predictions["parsed_choice"].fillna(0)).sum())
    _say(f"re-extracted {len(items)} answers ({changed} differ from the predict-time extraction)")
    write_parquet(items, items_out)
    write_csv(accuracy_table(items, language_table(study), study["stats"]["confidence"]), accuracy_out)


def compare(items_file: str, study: dict, effects_out: str, alignment_out: str, gains_out: str, notes_out: str) -> None:
    from .completeness import check_complete, note_missing
    from .stats import StatsSettings, write_comparisons
    from .stats import compare as run_compare

    start = time.perf_counter()
    items = pd.read_parquet(items_file)
    missing = check_complete(items, study["languages"], study["stats"]["allow_missing_cells"], items_file)
    comparisons = note_missing(run_compare(items, language_table(study), StatsSettings.from_config(study["stats"])), missing)
    write_comparisons(comparisons, effects_out, alignment_out, gains_out, notes_out)
    _say(f"{len(comparisons.effects)} effects, {len(comparisons.alignment)} alignment statistics in {time.perf_counter() - start:.1f}s")


def report(accuracy_file: str, effects_file: str, alignment_file: str, gains_file: str, study: dict, out_dir: str) -> None:
    from .report import write_report

    write_report(
        pd.read_csv(accuracy_file),
        pd.read_csv(effects_file),
        pd.read_csv(alignment_file),
        pd.read_csv(gains_file),
        language_table(study),
        study["stats"]["equivalence_margin"],
        out_dir,
    )
    _say(f"report written to {out_dir}")
