"""Chain-of-thought lengths of the embedded models, to choose `prompts.cot_max_new_tokens`
from measurement: base-model CoT continuations decoded with a large budget on a few
fixture test items per language, as the predict stage decodes them (xlt's engine,
greedy, stopping at a stated answer or end of sequence).

    python bench/cot_lengths.py                                 # both models, 4 items x 8 languages, budget 256
    python bench/cot_lengths.py --model gemma3-270m --budget 384

Prints, per model and language, the percentiles of generated tokens and why each
continuation stopped (answer stated, end of sequence, budget), and the share of
continuations finished within each candidate budget. The forced answer pass after an
unfinished continuation runs too (as in the predict stage) but is not measured here. Results:
bench/results/cot_lengths.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from inference import test_items  # noqa: E402

from xlt.config import load_config  # noqa: E402
from xlt.extract import extract_choice  # noqa: E402
from xlt.inference.engine import generate, resolve_batch_size  # noqa: E402
from xlt.inference.requests import build_requests, encode, uses_chat_template  # noqa: E402
from xlt.jobs import language_template  # noqa: E402
from xlt.models import ModelSpec, load_model, load_tokenizer, prepare_model  # noqa: E402
from xlt.prompts import load_template  # noqa: E402

CANDIDATE_BUDGETS = (64, 96, 128, 160, 192, 256)
PERCENTILES = (25, 50, 75, 90)


def base_checkpoint(model: str, spec: ModelSpec, models_root: str | None) -> Path:
    """The prepared base model: under --models-root, the workflow's own, or one prepared into the bench cache."""
    roots = ([Path(models_root)] if models_root else []) + [REPO / "results" / "models", REPO / "bench" / ".cache"]
    for candidate in (root / model / "base" for root in roots):
        if (candidate / "xlt_model.json").is_file():
            return candidate
    target = REPO / "bench" / ".cache" / model / "base"
    prepare_model(spec, target)
    return target


def measure(model_name: str, config: dict, items: pd.DataFrame, budget: int, models_root: str | None) -> pd.DataFrame:
    """One row per item: generated tokens and why the continuation stopped."""
    spec = ModelSpec.from_config(model_name, config["models"][model_name])
    base = base_checkpoint(model_name, spec, models_root)
    tokenizer = load_tokenizer(base, spec)
    model = load_model(base, spec, dtype="float32")
    langs = list(config["languages"])
    templates = {lang: load_template(REPO / language_template(config, lang)) for lang in langs}
    requests = build_requests(items, templates, "cot", "generate", budget)
    chat = uses_chat_template(spec, tokenizer)
    encoded = [encode(tokenizer, request, chat, spec.chat_template_kwargs) for request in requests]
    batch_size = resolve_batch_size(config["models"][model_name]["inference"]["batch_size"], model)
    started = time.perf_counter()
    generations = generate(model, tokenizer, encoded, batch_size, progress=False)
    seconds = time.perf_counter() - started
    rows = []
    for request, prompt, generation in zip(requests, encoded, generations):
        parsed = extract_choice(prompt.completion_prefix + generation.text, request.options)
        rows.append(
            {
                "model": model_name,
                "lang": request.lang,
                "item_id": request.item_id,
                "n_output_tokens": generation.n_output_tokens,
                "stop_reason": generation.stop_reason,
                "parsed": parsed is not None,
            }
        )
    frame = pd.DataFrame(rows)
    print(
        f"{model_name}: {len(requests)} items, budget {budget}, batch {batch_size}, {seconds:.1f}s "
        f"decoding ({len(requests) / seconds * 60:.1f} items/min)",
        flush=True,
    )
    return frame


def summary(frame: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Per model and language (and all languages): percentiles of generated tokens,
    stop reasons, and the share finished (answer or end of sequence) within each budget."""
    rows = []
    for (model, lang), group in [
        *frame.groupby(["model", "lang"]),
        *((key, rows) for key, rows in frame.assign(lang="all").groupby(["model", "lang"])),
    ]:
        tokens = group["n_output_tokens"].to_numpy()
        finished = group["stop_reason"] != "budget"
        row = {"model": model, "lang": lang, "n": len(group)}
        row |= {f"p{q}": float(np.percentile(tokens, q)) for q in PERCENTILES}
        row["parse_rate"] = float(group["parsed"].mean())
        row |= {f"stop_{reason}": int((group["stop_reason"] == reason).sum()) for reason in ("answer", "eos", "budget")}
        row |= {f"finished_by_{b}": float((finished & (tokens <= b)).mean()) for b in CANDIDATE_BUDGETS if b <= budget}
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument("--model", action="append", help="model key of the config (repeatable; default: every model)")
    parser.add_argument("--items-per-lang", type=int, default=4)
    parser.add_argument("--budget", type=int, default=256)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--models-root", help="a folder of prepared models, {model}/base (e.g. another checkout's results/models)"
    )
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    models = args.model or list(config["models"])
    items = test_items(config, list(config["languages"]), args.items_per_lang)
    frame = pd.concat(
        [measure(model, config, items, args.budget, args.models_root) for model in models], ignore_index=True
    )
    table = summary(frame, args.budget)
    pd.set_option("display.width", 200)
    print(table.to_string(index=False, float_format=lambda value: f"{value:.2f}"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "budget": args.budget,
        "items_per_lang": args.items_per_lang,
        "threads": args.threads,
        "rows": frame.to_dict("records"),
    }
    (out / "cot_lengths.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "cot_lengths.md").write_text(
        f"# CoT lengths, base models, budget {args.budget}, {args.items_per_lang} items x "
        f"{len(config['languages'])} languages\n\n" + table.to_markdown(index=False, floatfmt=".2f") + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
