"""Inference benchmark: the predict stage's engine against what a researcher would
otherwise run, on the same model and the same items, in one process.

    python bench/inference.py                      # SmolLM2-135M, 4 test items x 8 languages
    python bench/inference.py --items-per-lang 16  # the whole default test split

Measured, for `direct` and `cot` prompts:
  * engine: xlt's batched greedy decoding (xlt.inference.engine.generate), as the predict stage runs it;
  * naive:  one `model.generate` call per item (greedy, same prompt tokens, same token budget);
and both together ("direct + cot", the study's generation work: one item of each prompt):
the two prompts run apart (the engine twice, the naive loop) against the predict stage's
one run over both, whose items share their prompt pass (direct + cot + choice, with
token-level agreement of the two); the direct prompt with the choice cell (its label
log-probabilities, read from the same prompt pass) against the direct prompt alone.
And for `loglik` scoring (lm-evaluation-harness's Belebele prompt, choices " A".." D"):
  * xlt's scorer (the engine with no token generated) against lm-evaluation-harness 0.4.x itself, run
    offline on a local task YAML over the same items (`include_path`), at batch 1, 8 and
    the engine's batch size, with item-level agreement of the chosen option.
And llama.cpp (llama-cpp-python, bench/llamacpp.py) on the same GGUF file prepare_model
converts, for `direct` (with the choice cell: its labels' scores after the prompt) and
`cot`: the engine's prompt token ids, greedy, the engine's token budgets and stopping
rule, one sequence at a time and several sequences in one llama_batch (`--llama-cpp-batches`),
with the ratio of its seconds to the engine's and the agreement of its parsed answers
and likeliest labels with the engine's. llama.cpp runs the GGUF's quantised weights,
the engine and the naive loop their float32 de-quantisation. Its rows join the table
when llama_cpp imports; `--llama-cpp` runs only the engine against llama.cpp
(results: inference_llama_cpp.json and .md).
And what the cloze cell and the choice cell's option rotations add to a predict job
(`--additions`, goal: at most +25%): the predict stage's run over direct + cot (shared
prompt pass, choice cell) against the same run with the three rotated direct prompts
and the cloze prompts (conditional and unconditional) added, with the agreement of the
direct, cot and choice cells between the two (`--additions-only` runs just this).
Model loading is outside every timing. Achieved FLOP/s is 2 x parameters x tokens
processed per second, as a share of a matmul peak measured first in the same dtype.
Results: bench/results/inference.json and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/llamacpp.py, also where loaded by path
sys.path.insert(0, str(REPO / "src"))

import llamacpp  # noqa: E402
import pandas as pd  # noqa: E402

from xlt.config import load_config  # noqa: E402
from xlt.data import DataSource, prepare_languages  # noqa: E402
from xlt.extract import extract_choice  # noqa: E402
from xlt.inference.engine import generate, resolve_batch_size  # noqa: E402
from xlt.inference.predictions import prediction_frames  # noqa: E402
from xlt.inference.requests import build_requests, encode, uses_chat_template  # noqa: E402
from xlt.inference.stopping import stated_answer, stop_token_ids  # noqa: E402
from xlt.jobs import language_template  # noqa: E402
from xlt.models import ModelSpec, gguf_file, load_model, load_tokenizer, prepare_model  # noqa: E402
from xlt.prompts import load_template, options_of  # noqa: E402

HARNESS_TASK = (
    """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files: {{test: {data}}}
test_split: test
fewshot_config:
  sampler: first_n
output_type: multiple_choice
"""
    'doc_to_text: "P: {{{{flores_passage}}}}\\nQ: {{{{question.strip()}}}}\\nA: {{{{mc_answer1}}}}'
    '\\nB: {{{{mc_answer2}}}}\\nC: {{{{mc_answer3}}}}\\nD: {{{{mc_answer4}}}}\\nAnswer:"\n'
    """\
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: "{{{{['1', '2', '3', '4'].index(correct_answer_num)}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
)


def matmul_peak(dtype: str, seconds: float = 3.0, size: int = 2048) -> float:
    """FLOP/s of a square matmul in `dtype` on this machine (best of repeated runs)."""
    import torch

    a, b = torch.randn(size, size, dtype=getattr(torch, dtype)), torch.randn(size, size, dtype=getattr(torch, dtype))
    torch.mm(a, b)
    best, deadline = 0.0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - started))
    return best


def cpu_name() -> str:
    """The CPU's model name and its widest vector and matrix instructions (Linux)."""
    info = Path("/proc/cpuinfo").read_text(encoding="utf-8") if Path("/proc/cpuinfo").is_file() else ""
    name = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
        platform.machine(),
    )
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    extensions = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    return f"{name} ({', '.join(extensions) or 'no AVX2'})"


def test_items(config: dict, langs: list[str], per_lang: int) -> pd.DataFrame:
    data = config["data"]
    frames = prepare_languages(
        DataSource.from_config({**data, "fixture_dir": str(REPO / data["fixture_dir"])}),
        langs,
        data["test_fraction"],
        data["seed"],
        max_test_items=per_lang,
    )
    return pd.concat(
        [frame[frame["split"] == "test"].assign(lang=lang) for lang, frame in frames.items()], ignore_index=True
    )


def naive_generate(model, tokenizer, requests, max_new_tokens: int) -> list[tuple[str, int]]:
    """What one writes without an engine: one greedy `generate` per prompt."""
    import torch

    outputs = []
    with torch.inference_mode():
        for request in requests:
            ids = model.generate(
                torch.tensor([request.input_ids]),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            new = ids[0, len(request.input_ids) :].tolist()
            outputs.append((tokenizer.decode(new, skip_special_tokens=True), len(new)))
    return outputs


def _likeliest(logprobs: list[float] | None) -> int | None:
    return None if logprobs is None else max(range(len(logprobs)), key=logprobs.__getitem__)


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def throughput(
    name: str, seconds: float, n_items: int, prompt_tokens: int, new_tokens: int, parameters: int, peak: float
) -> dict:
    processed = prompt_tokens + new_tokens
    return {
        "method": name,
        "seconds": round(seconds, 2),
        "items": n_items,
        "items_per_s": round(n_items / seconds, 3),
        "prompt_tokens_per_s": round(prompt_tokens / seconds, 1),
        "new_tokens_per_s": round(new_tokens / seconds, 1),
        "tokens_processed_per_s": round(processed / seconds, 1),
        "flops_share_of_peak": round(2 * parameters * processed / seconds / peak, 4),
    }


def share_equal(ours: list, theirs: list) -> float:
    """The share of positions where two lists agree."""
    return sum(a == b for a, b in zip(ours, theirs, strict=True)) / len(ours)


def prompt_requests(items: pd.DataFrame, templates: dict, config: dict, prompt: str, tokenizer, spec, chat: bool):
    """A generated prompt's own requests (the choice cell's rotations are measured by
    --additions) and their encodings."""
    max_new_tokens = config["prompts"][f"{prompt}_max_new_tokens"]
    requests = [r for r in build_requests(items, templates, prompt, "generate", max_new_tokens) if not r.rotation]
    return requests, [encode(tokenizer, request, chat, spec.chat_template_kwargs) for request in requests]


def parsed_answers(requests, results, model_name: str, prompt: str) -> list[int | None]:
    """The prompt cell's parsed_choice of each request, as the predict stage writes it."""
    return [
        None if pd.isna(choice) else int(choice)
        for choice in prediction_frames(requests, results, model_name, "base")[prompt]["parsed_choice"]
    ]


def open_llama_cpp(spec: ModelSpec, threads: int, required: bool) -> llamacpp.LlamaCpp | None:
    """llama.cpp with the model's GGUF file, the one prepare_model converts; None (said
    once) where llama_cpp does not import or the model is no GGUF, unless `required`."""
    problem = None
    if not llamacpp.importable():
        problem = llamacpp.INSTALL
    elif not spec.is_gguf:
        problem = f"llama.cpp comparison: model {spec.name} is not a GGUF model (no package, no .gguf path)"
    if problem is not None:
        if required:
            sys.exit(problem)
        print(f"{problem}: its rows are left out", flush=True)
        return None
    with tempfile.TemporaryDirectory() as scratch:
        # loaded (memory-mapped) while an assembled file's folder still exists
        return llamacpp.LlamaCpp(gguf_file(spec, Path(scratch)), threads)


def llama_cpp_rows(
    llama: llamacpp.LlamaCpp,
    tokenizer,
    eos_ids: set[int],
    prompt: str,
    requests: list,
    encoded: list,
    engine: list,
    engine_s: float,
    model_name: str,
    batches: list[int],
    parameters: int,
    peak: float,
) -> tuple[list[dict], dict[str, float]]:
    """llama.cpp on one prompt's encoded requests at each of `batches` sequences decoded
    together (1: one at a time): a row each, with engine_speedup (its seconds over the
    engine's `engine_s`), and the agreement of its parsed answers with the engine's
    `engine` results and, where the prompt scores labels (the choice cell), of its
    likeliest label after the prompt, with the labels' mean absolute log-probability
    difference (label_logprob_diff: quantised against float32 weights, a few hundredths
    where the prompts are fed alike). Batches above 1 count the sequences whose tokens
    are one sequence's at a time; the fastest is marked best_batch."""
    prompt_tokens = sum(len(r.input_ids) for r in encoded)
    per_sequence = max(len(r.input_ids) + r.max_new_tokens for r in encoded)
    ours = parsed_answers(requests, engine, model_name, prompt)
    rows, agreement, first = [], {}, None
    for n_parallel in batches:
        session = llamacpp.Session(llama, n_parallel, per_sequence)
        try:
            results, seconds = timed(
                session.generate,
                encoded,
                eos_ids,
                lambda index, ids: stated_answer(tokenizer, encoded[index].completion_prefix, ids),
            )
        finally:
            session.close()
        name = "llama.cpp, one sequence" if n_parallel == 1 else f"llama.cpp, batch {n_parallel}"
        new_tokens = sum(len(result.tokens) for result in results)
        rows.append(
            {
                "prompt": prompt,
                **throughput(name, seconds, len(encoded), prompt_tokens, new_tokens, parameters, peak),
                "engine_speedup": round(seconds / engine_s, 2),
            }
        )
        print(rows[-1], flush=True)
        texts = [
            tokenizer.decode(
                result.tokens[:-1] if result.stop_reason == "eos" else result.tokens, skip_special_tokens=True
            )
            for result in results
        ]
        theirs = [
            extract_choice(request.completion_prefix + text, options)
            for request, options, text in zip(encoded, (r.options for r in requests), texts)
        ]
        agreement[f"{prompt}: engine vs {name} parsed answer"] = share_equal(ours, theirs)
        if any(result.label_logprobs is not None for result in results):
            agreement[f"choice: engine vs {name} likeliest label after the {prompt} prompt"] = share_equal(
                [_likeliest(g.label_logprobs) for g in engine], [_likeliest(r.label_logprobs) for r in results]
            )
            differences = [
                abs(a - b)
                for g, r in zip(engine, results)
                if g.label_logprobs is not None and r.label_logprobs is not None
                for a, b in zip(g.label_logprobs, r.label_logprobs)
            ]
            rows[-1]["label_logprob_diff"] = round(sum(differences) / len(differences), 4)
        if n_parallel == 1:
            first = results
        elif first is not None:
            agreement[f"{prompt}: llama.cpp {name.removeprefix('llama.cpp, ')} vs one sequence, same tokens"] = (
                share_equal([r.tokens for r in first], [r.tokens for r in results])
            )
    batched = [row for row in rows if row["method"] != "llama.cpp, one sequence"]
    if batched:
        min(batched, key=lambda row: row["seconds"])["best_batch"] = True
    return rows, agreement


def write_results(out: Path, stem: str, result: dict, title: str, notes: list[str]) -> None:
    """`stem`.json (the result) and `stem`.md (its rows as a table under `title` and
    `notes`, then its agreement shares) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [f"# {title}\n", *notes, "", pd.DataFrame(result["rows"]).to_markdown(index=False), "", "Agreement:"]
    lines += [f"- {name}: {value:.1%}" for name, value in result["agreement"].items()]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def run_harness(
    model, tokenizer, items: pd.DataFrame, batch_size: int, workdir: Path
) -> tuple[dict[tuple[str, str], int], float]:
    """lm-evaluation-harness on the same items and the same loaded model: the chosen
    option (1-4) per item id, and the seconds `simple_evaluate` took."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from xlt.data import BELEBELE_FIELDS

    tasks = []
    for lang, frame in items.groupby("lang"):
        data = workdir / f"{lang}.jsonl"
        frame[list(BELEBELE_FIELDS)].astype({"correct_answer_num": str}).to_json(
            data, orient="records", lines=True, force_ascii=False
        )
        task = f"xlt_belebele_{lang}"
        (workdir / f"{task}.yaml").write_text(HARNESS_TASK.format(task=task, data=data), encoding="utf-8")
        tasks.append(task)
    harness_model = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    started = time.perf_counter()
    results = lm_eval.simple_evaluate(
        model=harness_model,
        tasks=tasks,
        task_manager=lm_eval.tasks.TaskManager(include_path=str(workdir)),
        log_samples=True,
        num_fewshot=0,
    )
    seconds = time.perf_counter() - started
    choices: dict[tuple[str, str], int] = {}
    for task in tasks:
        for sample in results["samples"][task]:
            logliks = [response[0] for response in sample["filtered_resps"]]
            doc = sample["doc"]
            choices[f"{doc['link']}#{doc['question_number']}", task.removeprefix("xlt_belebele_")] = (
                max(range(4), key=logliks.__getitem__) + 1
            )
    return choices, seconds


def measure_additions(
    model, tokenizer, spec, items: pd.DataFrame, templates: dict, config: dict, batch_size: int
) -> dict:
    """The predict job over direct + cot as it was (no rotations, no cloze) and with the
    rotations and the cloze prompts, each timed once in this process; the cells the
    first writes must read the same in the second."""
    chat = uses_chat_template(spec, tokenizer)
    quiet = {"progress": False}
    requests = [
        request
        for prompt in ("direct", "cot", "cloze")
        for request in build_requests(
            items,
            templates,
            prompt,
            "continuations" if prompt == "cloze" else "generate",
            0 if prompt == "cloze" else config["prompts"][f"{prompt}_max_new_tokens"],
        )
    ]
    before = [request for request in requests if request.job != "cloze" and not request.rotation]
    timings, frames = {}, {}
    for name, chosen in (("without", before), ("with", requests)):
        encoded = [encode(tokenizer, request, chat, spec.chat_template_kwargs) for request in chosen]
        results, timings[name] = timed(generate, model, tokenizer, encoded, batch_size, **quiet)
        frames[name] = prediction_frames(chosen, results, "bench", "base")
    same = {
        cell: float(
            (
                frames["with"][cell]["parsed_choice"].fillna(0) == frames["without"][cell]["parsed_choice"].fillna(0)
            ).mean()
        )
        for cell in frames["without"]
    }
    return {
        "predict job (direct + cot + choice), seconds": round(timings["without"], 2),
        "with rotations and cloze, seconds": round(timings["with"], 2),
        "added": f"{timings['with'] / timings['without'] - 1:+.1%}",
        "requests without / with": f"{len(before)} / {len(requests)}",
        **{f"{cell}: same parsed_choice with and without": f"{value:.1%}" for cell, value in same.items()},
        "cloze accuracy (char)": f"{frames['with']['cloze']['correct'].mean():.1%}",
        "choice accuracy / debiased": f"{frames['with']['choice']['correct'].mean():.1%} / "
        f"{(frames['with']['choice']['debiased_choice'] == frames['with']['choice']['answer']).mean():.1%}",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--items-per-lang", type=int, default=4)
    parser.add_argument(
        "--base", help="the model's prepared base folder (default: results/models/MODEL/base, prepared if missing)"
    )
    parser.add_argument(
        "--adapter", help="a LoRA adapter folder (results/models/<model>/adapter-<source>): measure its variant"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument(
        "--dtype", default="float32", choices=["float32", "bfloat16"], help="weights and activations of every method"
    )
    parser.add_argument(
        "--batch-size", default=None, help="the engine's batch size (default: the model's config, auto: 64 on a CPU)"
    )
    parser.add_argument("--skip-harness", action="store_true", help="do not run lm-evaluation-harness")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    parser.add_argument(
        "--additions",
        action="store_true",
        help="also measure what the cloze cell and the rotations add to a predict job",
    )
    parser.add_argument(
        "--additions-only",
        action="store_true",
        help="measure only that (results: inference_additions[-<adapter>].json and .md)",
    )
    parser.add_argument(
        "--llama-cpp",
        action="store_true",
        help="measure only the engine against llama.cpp (results: inference_llama_cpp.json and .md); "
        "without it llama.cpp's rows join the table where llama_cpp imports",
    )
    parser.add_argument(
        "--llama-cpp-batches",
        default="1,8,32",
        help="sequences llama.cpp decodes together, comma-separated, each measured (1: one at a time)",
    )
    args = parser.parse_args(argv)
    batches = [int(n) for n in args.llama_cpp_batches.split(",")]

    import torch

    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    spec = ModelSpec.from_config(args.model, config["models"][args.model])
    llama = None if args.additions_only else open_llama_cpp(spec, args.threads, required=args.llama_cpp)
    if args.base and not (Path(args.base) / "xlt_model.json").is_file():
        sys.exit(f"--base {args.base}: no prepared model there (xlt_model.json)")
    base = Path(args.base) if args.base else REPO / "results" / "models" / args.model / "base"
    if not (base / "xlt_model.json").is_file():
        base = REPO / "bench" / ".cache" / args.model / "base"
        if not (base / "xlt_model.json").is_file():
            prepare_model(spec, base)
    tokenizer = load_tokenizer(base, spec)
    model = load_model(base, spec, dtype=args.dtype, adapter_dir=args.adapter)
    parameters = sum(p.numel() for p in model.parameters())
    langs = list(config["languages"])
    items = test_items(config, langs, args.items_per_lang)
    templates = {lang: load_template(REPO / language_template(config, lang)) for lang in langs}
    configured = args.batch_size or config["models"][args.model]["inference"]["batch_size"]
    batch_size = resolve_batch_size(int(configured) if str(configured).isdigit() else configured, model)
    peak = matmul_peak(args.dtype)
    print(
        f"{args.model}: {parameters / 1e6:.0f}M parameters, {len(items)} items ({args.items_per_lang} x "
        f"{len(langs)} languages), "
        f"{args.threads} threads, {args.dtype}, batch size {batch_size}, matmul peak {peak / 1e9:.1f} GFLOP/s"
        + (f"; llama.cpp: {llama.description}" if llama else ""),
        flush=True,
    )

    if args.additions or args.additions_only:
        additions = measure_additions(model, tokenizer, spec, items, templates, config, batch_size)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        header = {
            "model": args.model,
            "adapter": args.adapter,
            "items": len(items),
            "threads": args.threads,
            "dtype": args.dtype,
            "batch_size": batch_size,
        }
        variant = f"-{Path(args.adapter).name}" if args.adapter else ""
        (out / f"inference_additions{variant}.json").write_text(
            json.dumps({**header, **additions}, indent=2) + "\n", encoding="utf-8"
        )
        lines = [
            f"# What the cloze cell and the option rotations add to a predict job: {args.model}"
            f"{' + ' + Path(args.adapter).name if args.adapter else ''}, "
            f"{len(items)} items, {args.threads} threads\n"
        ]
        lines += [f"- {name}: {value}" for name, value in additions.items()]
        (out / f"inference_additions{variant}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print("\n".join(lines), flush=True)
        if args.additions_only:
            return

    chat = uses_chat_template(spec, tokenizer)
    quiet = {"progress": False}
    eos_ids = stop_token_ids(model.generation_config, tokenizer)
    header = {
        "model": args.model,
        "parameters": parameters,
        "items": len(items),
        "threads": args.threads,
        "dtype": args.dtype,
        "batch_size": batch_size,
        "matmul_peak_gflops": round(peak / 1e9, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "cpu": cpu_name(),
        "torch": torch.__version__,
    }
    title = (
        f"Inference benchmark: {args.model}, {len(items)} items, {args.threads} threads, {args.dtype}, "
        f"batch size {batch_size}"
    )
    notes = [f"CPU: {cpu_name()}, {os.cpu_count()} cores."]
    if llama is not None:
        header["llama_cpp"] = f"llama-cpp-python {llama.version}: {llama.description}"
        notes.append(
            f"llama.cpp (llama-cpp-python {llama.version}) runs the GGUF's own quantised weights "
            f"({llama.description}); the engine and the naive loop run them de-quantised to {args.dtype}. "
            "engine_speedup: a method's seconds over the engine's on the same prompt."
        )

    def llama_cpp_prompt(prompt, requests, encoded, engine, engine_s) -> None:
        assert llama is not None
        more, agreed = llama_cpp_rows(
            llama,
            tokenizer,
            eos_ids,
            prompt,
            requests,
            encoded,
            engine,
            engine_s,
            args.model,
            batches,
            parameters,
            peak,
        )
        rows.extend(more)
        agreement.update(agreed)

    rows: list[dict] = []
    agreement: dict[str, float] = {}
    if args.llama_cpp:
        for prompt in ("direct", "cot"):
            requests, encoded = prompt_requests(items, templates, config, prompt, tokenizer, spec, chat)
            engine, engine_s = timed(generate, model, tokenizer, encoded, batch_size, **quiet)
            new_tokens = sum(g.n_output_tokens for g in engine)
            prompt_tokens = sum(len(r.input_ids) for r in encoded)
            rows.append(
                {
                    "prompt": prompt,
                    **throughput("engine", engine_s, len(requests), prompt_tokens, new_tokens, parameters, peak),
                }
            )
            print(rows[-1], flush=True)
            llama_cpp_prompt(prompt, requests, encoded, engine, engine_s)
        result = {**header, "rows": rows, "agreement": agreement}
        write_results(Path(args.out), "inference_llama_cpp", result, f"{title}: the engine against llama.cpp", notes)
        return
    # seconds, items, prompt tokens, new tokens of the study's whole generation work
    # per method: seconds, items, prompt tokens, new tokens
    totals: dict[str, tuple[float, int, int, int]] = {"engine": (0.0, 0, 0, 0), "naive generate loop": (0.0, 0, 0, 0)}
    separate = {}  # prompt -> (its encoded requests, the engine's results run apart)
    for prompt in ("direct", "cot"):
        max_new_tokens = config["prompts"][f"{prompt}_max_new_tokens"]
        requests, encoded = prompt_requests(items, templates, config, prompt, tokenizer, spec, chat)
        prompt_tokens = sum(len(r.input_ids) for r in encoded)
        engine, engine_s = timed(generate, model, tokenizer, encoded, batch_size, **quiet)
        separate[prompt] = (encoded, engine)
        naive, naive_s = timed(naive_generate, model, tokenizer, encoded, max_new_tokens)
        for name, outputs, seconds in (
            ("engine", [(g.text, g.n_output_tokens) for g in engine], engine_s),
            ("naive generate loop", naive, naive_s),
        ):
            new_tokens = sum(n for _, n in outputs)
            rows.append(
                {
                    "prompt": prompt,
                    **throughput(name, seconds, len(requests), prompt_tokens, new_tokens, parameters, peak),
                }
            )
            print(rows[-1], flush=True)
            before = totals[name]
            totals[name] = (
                before[0] + seconds,
                before[1] + len(requests),
                before[2] + prompt_tokens,
                before[3] + new_tokens,
            )
        ours = parsed_answers(requests, engine, args.model, prompt)
        theirs = [
            extract_choice(r.completion_prefix + text, options_of(item))
            for r, (text, _), item in zip(encoded, naive, items.to_dict("records"))
        ]
        agreement[f"{prompt}: engine vs naive parsed answer"] = sum(a == b for a, b in zip(ours, theirs)) / len(ours)
        rows[-2]["speedup_vs_naive"] = round(naive_s / engine_s, 2)
        if prompt == "direct":
            # the same job without the choice cell: its labels left unscored
            alone, alone_s = timed(
                generate,
                model,
                tokenizer,
                [dataclasses.replace(r, scores_prompt=False) for r in encoded],
                batch_size,
                **quiet,
            )
            rows.append(
                {
                    "prompt": "direct",
                    **throughput(
                        "engine, without the choice cell",
                        alone_s,
                        len(requests),
                        prompt_tokens,
                        sum(g.n_output_tokens for g in alone),
                        parameters,
                        peak,
                    ),
                }
            )
            rows[-1]["choice_cell_extra"] = f"{engine_s / alone_s - 1:+.1%}"
            print(rows[-1], flush=True)
            agreement["direct: text with vs without the choice cell"] = sum(
                a.text == b.text for a, b in zip(engine, alone)
            ) / len(engine)
        if llama is not None:
            llama_cpp_prompt(prompt, requests, encoded, engine, engine_s)
    for name, (seconds, n_items, prompt_tokens, new_tokens) in totals.items():
        rows.append(
            {
                "prompt": "direct + cot",
                **throughput(name, seconds, n_items, prompt_tokens, new_tokens, parameters, peak),
            }
        )
        print(rows[-1], flush=True)
    rows[-2]["speedup_vs_naive"] = round(totals["naive generate loop"][0] / totals["engine"][0], 2)
    # the predict stage's run: both prompts at once, each item's prompt pass shared
    both = separate["direct"][0] + separate["cot"][0]
    shared, shared_s = timed(generate, model, tokenizer, both, batch_size, **quiet)
    apart = separate["direct"][1] + separate["cot"][1]
    rows.append(
        {
            "prompt": "direct + cot",
            **throughput(
                "engine, shared prompt pass",
                shared_s,
                len(both),
                sum(len(r.input_ids) for r in both),
                sum(g.n_output_tokens for g in shared),
                parameters,
                peak,
            ),
            "speedup_vs_naive": round(totals["naive generate loop"][0] / shared_s, 2),
            "speedup_vs_separate": round(totals["engine"][0] / shared_s, 2),
        }
    )
    print(rows[-1], flush=True)
    agreement["direct + cot: shared vs separate prompt pass, same tokens and stop"] = sum(
        (a.text, a.n_output_tokens, a.stop_reason) == (b.text, b.n_output_tokens, b.stop_reason)
        for a, b in zip(shared, apart)
    ) / len(both)
    agreement["direct + cot: shared vs separate, same likeliest label (choice cell, forced answers)"] = sum(
        [_likeliest(a.label_logprobs), _likeliest(a.forced_logprobs)]
        == [_likeliest(b.label_logprobs), _likeliest(b.forced_logprobs)]
        for a, b in zip(shared, apart)
    ) / len(both)

    loglik_requests = [r for r in build_requests(items, templates, "direct", "loglik", 0) if r.harness]
    loglik_encoded = [encode(tokenizer, request, chat) for request in loglik_requests]
    scores, loglik_s = timed(generate, model, tokenizer, loglik_encoded, batch_size, **quiet)
    context_tokens = sum(len(r.input_ids) for r in loglik_encoded)
    rows.append(
        {"prompt": "loglik", **throughput("xlt loglik", loglik_s, len(items), context_tokens, 0, parameters, peak)}
    )
    print(rows[-1], flush=True)
    if not args.skip_harness:
        frame = prediction_frames(loglik_requests, scores, args.model, "base")["direct"]
        # the harness at its own best sizes here (1 and 8) and at the engine's
        for harness_batch in sorted({1, 8, batch_size}):
            with tempfile.TemporaryDirectory() as workdir:
                harness, harness_s = run_harness(model, tokenizer, items, harness_batch, Path(workdir))
            name = f"lm-evaluation-harness, batch {harness_batch}"
            rows.append(
                {
                    "prompt": "loglik",
                    **throughput(name, harness_s, len(items), context_tokens, 0, parameters, peak),
                    "xlt_speedup": round(harness_s / loglik_s, 2),
                }
            )
            print(rows[-1], flush=True)
            same = [
                harness[(item_id, lang)] == choice
                for item_id, lang, choice in zip(frame["item_id"], frame["lang"], frame["parsed_choice"])
            ]
            agreement[f"loglik: xlt vs {name} chosen option"] = sum(same) / len(same)

    result = {
        **header,
        "lm_eval": getattr(sys.modules.get("lm_eval"), "__version__", None),
        "rows": rows,
        "agreement": agreement,
    }
    write_results(Path(args.out), "inference", result, title, notes)


if __name__ == "__main__":
    main()
