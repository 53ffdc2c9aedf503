"""Predictions drawn with known true effects, to check that the statistics find what is
there and nothing else (false-positive rate, power, interval coverage).

Each item has a difficulty shared by its translations (items are parallel across
languages) plus a translation-specific part, on the logit scale. Items are questions on
passages: a passage adds a difficulty shared by its questions in every cell, and one
per cell (language x variant x prompt) shared by its questions in that cell, which is
what makes two questions on one passage change together. A cell's intercept is solved
so that its accuracy *averaged over items* is exactly the scenario's, so the true
effects are known on the accuracy scale the statistics report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import optimize, special

from .errors import XltError
from .languages import Language, language_table, source_languages
from .paths import GENERATED_PROMPTS, PREDICTION_COLUMNS, finetuned_variants
from .stattests import equivalence_p, expanded_confidence

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(64)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


@dataclass(frozen=True)
class Scenario:
    """True accuracies of one model. Fine-tuning adds `ft_gain` everywhere,
    `related_advantage` more on related targets (after the sources that carry it, see
    simulate_cells) and `script_advantage` more on targets written in the source's script;
    chain-of-thought adds `cot_gain`;
    `language_gain_sd` gives every language its own fine-tuning gain on top, and
    `language_baseline_sd` its own baseline (logit scale around `baseline`, within
    10-80%); `proximity_slope` adds that much times the target's proximity to the
    source (simulate_cells' `proximity`).
    `n_items` questions sit on passages of `questions_per_passage` each."""

    n_items: int = 200
    baseline: float = 0.5
    ft_gain: float = 0.05
    related_advantage: float = 0.0
    script_advantage: float = 0.0
    cot_gain: float = 0.0
    item_sd: float = 1.0
    item_language_sd: float = 0.5
    language_gain_sd: float = 0.0
    language_baseline_sd: float = 0.0
    questions_per_passage: int = 1
    passage_sd: float = 0.0
    passage_cell_sd: float = 0.0
    unparsed_share: float = 0.2
    proximity_slope: float = 0.0

    def with_(self, **changes) -> Scenario:
        return replace(self, **changes)

    @property
    def passages(self) -> np.ndarray:
        """Each question's passage number."""
        if self.n_items % self.questions_per_passage:
            raise XltError(
                f"n_items={self.n_items} is not a whole number of passages of {self.questions_per_passage} questions"
            )
        return np.arange(self.n_items) // self.questions_per_passage

    @property
    def spread(self) -> float:
        """SD of an item's logit difficulty in one cell, all parts together."""
        return math.sqrt(self.item_sd**2 + self.item_language_sd**2 + self.passage_sd**2 + self.passage_cell_sd**2)


def cell_accuracy(
    scenario: Scenario,
    language: Language,
    source_script: str,
    variant: str,
    prompt: str,
    language_gain: float = 0.0,
    related: bool = True,
) -> float:
    """True accuracy of one cell; `related`: whether this fine-tuned variant's source
    carries the related-language advantage."""
    accuracy = scenario.baseline
    if variant != "base":
        accuracy += scenario.ft_gain + language_gain
        if language.is_target:
            accuracy += scenario.related_advantage * related * (
                language.group == "related"
            ) + scenario.script_advantage * (language.script == source_script)
    if prompt == "cot":
        accuracy += scenario.cot_gain
    if not 0 < accuracy < 1:
        raise XltError(
            f"scenario gives accuracy {accuracy:.3f} for {language.code} {variant}/{prompt}; it must lie "
            "strictly between 0 and 1"
        )
    return accuracy


@lru_cache(maxsize=4096)
def _intercept(accuracy: float, spread: float) -> float:
    """Logit intercept whose accuracy averaged over N(0, spread) difficulties is `accuracy`."""
    return optimize.brentq(
        lambda c: float(_WEIGHTS @ special.expit(c - spread * _NODES)) - accuracy, -30, 30, xtol=1e-12
    )


def _passage_part(scenario: Scenario, sd: float, rng: np.random.Generator) -> np.ndarray | float:
    """A difficulty drawn per passage and repeated on its questions (0 when sd is 0)."""
    return rng.normal(0.0, sd, scenario.n_items // scenario.questions_per_passage)[scenario.passages] if sd else 0.0


# One fine-tuned variant whose source carries the related-language advantage, named `ft`
# as xlt.stats names the one source it compares (xlt.stats.sources.source_items): for cells and
# items that go to stats.compare directly. study_variants names a study's variants as
# its predictions tree does, after their sources.
SINGLE_SOURCE = {"ft": True}


def simulate_cells(
    scenario: Scenario,
    languages: dict[str, Language],
    rng: np.random.Generator,
    difficulty: np.ndarray | None = None,
    variants: dict[str, bool] = SINGLE_SOURCE,
    proximity: dict[str, dict[str, float]] | None = None,
) -> tuple[np.ndarray, list[tuple[str, str, str]]]:
    """One model's items x cells matrix of 0/1 correctness and the (variant, prompt, lang)
    of each column. `difficulty` (one per item, passage part included) lets models share
    their items. `variants`: each fine-tuned variant and whether its source carries the
    related-language advantage (study_variants); every one has the same `ft_gain` and
    language gains, so what differs between sources is that advantage alone.
    `proximity`: variant -> target -> its proximity to that variant's source, which
    `proximity_slope` turns into gain (languages without one gain nothing from it)."""
    n = scenario.n_items
    if difficulty is None:
        difficulty = rng.normal(0.0, scenario.item_sd, n) + _passage_part(scenario, scenario.passage_sd, rng)
    source_script = next(language.script for language in languages.values() if language.group == "source")
    columns, blocks = [], []
    for code, language in languages.items():
        translation = difficulty + rng.normal(0.0, scenario.item_language_sd, n)
        language_gain = rng.normal(0.0, scenario.language_gain_sd) if scenario.language_gain_sd else 0.0
        own = scenario
        if scenario.language_baseline_sd:
            # Kept within 10-80% so that every gain stays a valid accuracy, and rounded
            # to a tenth of a point: the true accuracy is still exact, and the cell
            # intercepts come from a cache of at most a thousand values.
            shifted = special.expit(special.logit(scenario.baseline) + rng.normal(0.0, scenario.language_baseline_sd))
            own = scenario.with_(baseline=round(float(np.clip(shifted, 0.1, 0.8)), 3))
        for variant in ("base", *variants):
            for prompt in GENERATED_PROMPTS:
                gain = (
                    language_gain
                    + scenario.proximity_slope * (proximity or {}).get(variant, {}).get(code, 0.0) * language.is_target
                )
                accuracy = cell_accuracy(
                    own, language, source_script, variant, prompt, gain, variants.get(variant, False)
                )
                intercept = _intercept(round(accuracy, 12), scenario.spread)
                passage = _passage_part(scenario, scenario.passage_cell_sd, rng)
                blocks.append(rng.random(n) < special.expit(intercept - translation - passage))
                columns.append((variant, prompt, code))
    return np.column_stack(blocks).astype(float), columns


def simulate_predictions(
    scenarios: dict[str, Scenario],
    languages: dict[str, Language],
    seed: int = 0,
    variants: dict[str, bool] = SINGLE_SOURCE,
    proximity: dict[str, dict[str, float]] | None = None,
) -> pd.DataFrame:
    """Predictions in the contract's columns for every model, variant, prompt and
    language; the models answer the same items (their difficulties are shared).
    `variants` and `proximity` as simulate_cells takes them (study_variants for a
    study's own: a tree for `xlt compare` names each variant after its source; the
    default's `ft` is what stats.compare reads)."""
    rng = np.random.default_rng(seed)
    sizes = {scenario.n_items for scenario in scenarios.values()}
    if len(sizes) != 1:
        raise XltError("simulated models must share their items: give every scenario the same n_items")
    layouts = {scenario.questions_per_passage for scenario in scenarios.values()}
    if len(layouts) != 1:
        raise XltError("simulated models must share their passages: give every scenario the same questions_per_passage")
    n = sizes.pop()
    first = next(iter(scenarios.values()))
    difficulty = rng.normal(0.0, 1.0, n)
    passage_difficulty = (
        rng.normal(0.0, 1.0, n // first.questions_per_passage)[first.passages]
        if any(s.passage_sd for s in scenarios.values())
        else 0.0
    )
    item_ids = [f"item{p:05d}#{q + 1}" for p, q in zip(first.passages, np.arange(n) % first.questions_per_passage)]
    frames = []
    for model, scenario in scenarios.items():
        matrix, columns = simulate_cells(
            scenario,
            languages,
            rng,
            difficulty * scenario.item_sd + passage_difficulty * scenario.passage_sd,
            variants,
            proximity,
        )
        answer = 1 + np.arange(n) % 4
        for k, (variant, prompt, lang) in enumerate(columns):
            correct = matrix[:, k].astype(bool)
            wrong = 1 + (answer - 1 + rng.integers(1, 4, n)) % 4
            unparsed = rng.random(n) < scenario.unparsed_share
            choice = pd.array(np.where(correct, answer, wrong), dtype="Int64")
            choice[~correct & unparsed] = pd.NA
            letters = np.array(list("ABCD"))[np.asarray(choice.fillna(1), dtype=int) - 1]
            frames.append(
                pd.DataFrame(
                    {
                        "item_id": item_ids,
                        "lang": lang,
                        "model": model,
                        "variant": variant,
                        "prompt": prompt,
                        "raw_output": np.where(choice.isna(), "I am not sure.", np.char.add("Answer: ", letters)),
                        "parsed_choice": choice,
                        "answer": answer,
                        "correct": correct,
                        "n_prompt_tokens": 150,
                        "n_output_tokens": 60 if prompt == "cot" else 3,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True).loc[:, list(PREDICTION_COLUMNS)]


def study_variants(study: dict) -> dict[str, bool]:
    """Each fine-tuned variant of `study` (a config) and whether its source carries the
    related-language advantage: the one source of a single-source study, else the
    sources of the related families (a planted advantage is then an interaction)."""
    sources = source_languages(study)
    return {
        variant: len(sources) == 1 or study["languages"][source]["family"] in study["related_families"]
        for source, variant in finetuned_variants(sources).items()
    }


def primary_name(study: dict) -> str:
    """The study's automatic primary test (stats.primary auto) as prompt/effect: the
    interaction under the direct prompt with several sources, else the relatedness
    effect under the direct prompt."""
    from .primary import AUTO_PRIMARY

    return "/".join(AUTO_PRIMARY[0] if len(source_languages(study)) > 1 else AUTO_PRIMARY[-1])


def primary_weights(cells, study: dict) -> np.ndarray:
    """The weights over one model's cells (ModelCells) whose sum is primary_name's effect."""
    from .stats.cells import FT_DIRECT
    from .stats.sources import interaction_weights

    sources = source_languages(study)
    if len(sources) > 1:
        weights = interaction_weights(cells, study, "direct")
        if weights is None:
            raise XltError(
                "the study's primary test is the interaction of several sources: it needs sources inside "
                "and outside the related families"
            )
        return weights
    # The fine-tuning gain of the one source's variant (study_variants), as stats names it `ft`.
    comparison = replace(FT_DIRECT, after=(finetuned_variants(sources)[sources[0]], FT_DIRECT.prompt))
    groups = cells.groups(comparison, language_table(study))
    return cells.contrast_weights(comparison, groups["related"], groups["control"])


def primary_trials(
    scenario: Scenario, study: dict, trials: int, settings, seed: int = 0, clustered: bool = True, batch: int = 250
) -> pd.DataFrame:
    """The study's primary test (primary_weights) on `trials` simulated studies of one
    model: one row per trial with estimate, ci_low, ci_high, p_value (passage sign-flip)
    and equivalence_p, as effects.csv has them. `clustered=False` is the question-level
    version (questions resampled and flipped as if independent), kept for comparison;
    both see the same data for one seed. The trials are computed a batch at a time with
    the primitives accuracy_effect uses (tests/test_simulation.py checks the two agree).
    Trials share one bootstrap and sign-flip draw, which is harmless: each trial's items
    are new."""
    from .stats.cells import ModelCells

    languages, variants = language_table(study), study_variants(study)
    rng = np.random.default_rng(seed)
    resampling = settings.resampling(scenario.passages if clustered else scenario.n_items)
    clusters = None if resampling.singletons else resampling.clusters
    tail = (1 - expanded_confidence(settings.confidence, resampling.n_clusters)) / 2
    sizes = resampling.counts.sum(axis=1)
    rows = []
    for start in range(0, trials, batch):
        sums = []
        for _ in range(min(batch, trials - start)):
            matrix, columns = simulate_cells(scenario, languages, rng, variants=variants)
            weights = primary_weights(ModelCells(matrix, {column: k for k, column in enumerate(columns)}), study)
            sums.append(matrix @ weights)
        values = np.array(sums)
        low, high = np.quantile(values @ resampling.counts.T / sizes, [tail, 1 - tail], axis=1)
        observed = np.abs(values.mean(axis=1))
        flipped = np.abs(values.astype(np.float32) @ resampling.signs.T) / values.shape[1]
        p = (1 + np.sum(flipped >= observed[:, None] - 1e-6, axis=1)) / (resampling.signs.shape[0] + 1)
        scale = (float(weights[weights < 0].sum()), float(weights[weights > 0].sum()))
        for k, row in enumerate(values):
            equivalence = equivalence_p(row, settings.equivalence_margin, *scale, clusters)
            rows.append(
                {
                    "estimate": float(row.mean()),
                    "ci_low": low[k],
                    "ci_high": high[k],
                    "p_value": p[k],
                    "equivalence_p": equivalence,
                }
            )
    return pd.DataFrame(rows)


# The simulated study of `python -m xlt.simulate`: two questions per passage, a passage
# effect shared by its questions in every cell and one per cell (what makes two
# questions on one passage gain together), and a baseline of its own per language.
PASSAGE_CORRELATED = Scenario(questions_per_passage=2, passage_sd=0.5, passage_cell_sd=2.0, language_baseline_sd=0.5)
VERSIONS = {"passage": True, "question-level": False}


def operating_characteristics(
    study: dict, settings, trials: int, n_items: int = 200, base: Scenario = PASSAGE_CORRELATED, seed: int = 0
) -> pd.DataFrame:
    """False-positive rate and power of the study's primary test (passage sign-flip; the
    relatedness effect, or with several sources their interaction), coverage of its
    interval, and the TOST's false-equivalence rate at the margin and its power, each
    with its Monte-Carlo standard error; and the same for the question-level version on
    the same data, for comparison."""
    alpha = settings.alpha
    margin = settings.equivalence_margin
    advantages = {"no effect": 0.0, "10-point advantage": 0.10, "advantage = margin": margin}
    test = primary_name(study)
    rows = []
    for version, clustered in VERSIONS.items():
        results = {
            name: primary_trials(
                base.with_(n_items=n_items, related_advantage=advantage), study, trials, settings, seed + k, clustered
            )
            for k, (name, advantage) in enumerate(advantages.items())
        }
        covered = {
            name: (frame.ci_low <= advantages[name]) & (advantages[name] <= frame.ci_high)
            for name, frame in results.items()
        }
        checks = [
            ("false-positive rate (p < alpha)", "no effect", results["no effect"].p_value < alpha, f"<= {alpha:g}"),
            ("power (p < alpha)", "10-point advantage", results["10-point advantage"].p_value < alpha, ""),
            *(
                (f"coverage of the {settings.confidence:.0%} interval", name, hits, f"~ {settings.confidence:g}")
                for name, hits in covered.items()
            ),
            (
                "false equivalence (TOST p < alpha)",
                "advantage = margin",
                results["advantage = margin"].equivalence_p < alpha,
                f"<= {alpha:g}",
            ),
            ("equivalence power (TOST p < alpha)", "no effect", results["no effect"].equivalence_p < alpha, ""),
        ]
        for check, scenario, hits, target in checks:
            rate = float(np.mean(hits))
            rows.append(
                {
                    "version": version,
                    "test": test,
                    "check": check,
                    "scenario": scenario,
                    "n_items": n_items,
                    "questions_per_passage": base.questions_per_passage,
                    "trials": trials,
                    "rate": rate,
                    "mc_se": math.sqrt(rate * (1 - rate) / trials),
                    "target": target,
                }
            )
    return pd.DataFrame(rows)


# The continuous design (xlt.stats.proximity): Arabic as the source and the first 8, 30
# or 120 of these targets (the default's seven, Tigrinya, then Belebele's in code order).
PROXIMITY_SOURCE = "arb_Arab"
PROXIMITY_TARGETS = ("heb_Hebr", "amh_Ethi", "mlt_Latn", "tur_Latn", "eng_Latn", "pes_Arab", "urd_Arab", "tir_Ethi")
PROXIMITY_SIZES = (8, 30, 120)
PLANTED_SLOPE = 0.2  # accuracy per unit of proximity: +10 points at Hebrew's 0.5


def proximity_study(n_targets: int) -> dict:
    """A validated single-source study of Arabic and its first `n_targets` targets."""
    from .config import validate_config
    from .languages import language_metadata

    rest = [code for code in language_metadata() if code != PROXIMITY_SOURCE and code not in PROXIMITY_TARGETS]
    targets = [*PROXIMITY_TARGETS, *rest][:n_targets]
    if len(targets) < n_targets:
        raise XltError(f"{n_targets} targets asked for; Belebele has {len(targets)} besides {PROXIMITY_SOURCE}")
    return validate_config(
        {
            "languages": {code: {} for code in [PROXIMITY_SOURCE, *targets]},
            "source_language": PROXIMITY_SOURCE,
            "related_families": ["Afro-Asiatic"],
            "data": {},
            "models": {"simulated": {"id": "xlt/simulated"}},
        }
    )


def proximity_trials(scenario: Scenario, study: dict, trials: int, settings, seed: int = 0) -> pd.DataFrame:
    """`proximity_slope` under the direct prompt (xlt.stats.proximity) on `trials`
    simulated studies of one model whose fine-tuning gain grows by
    `scenario.proximity_slope` per unit of proximity: estimate, interval, p, TOST p."""
    from .proximity import SLOPE, proximity_table
    from .stats.proximity import slope_row

    languages = language_table(study)
    table = proximity_table(study)
    targets = list(table["target"])
    proximity = dict(zip(targets, table["genealogical"].to_numpy(float)))
    script = table["same_script"].to_numpy(float)
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(trials):
        matrix, columns = simulate_cells(scenario, languages, rng, proximity={"ft": proximity})
        accuracy = dict(zip(columns, matrix.mean(axis=0)))
        baseline = np.array([accuracy[("base", "direct", code)] for code in targets])
        gain = np.array([accuracy[("ft", "direct", code)] for code in targets]) - baseline
        row = slope_row(
            ("simulated", "direct", SLOPE, scenario.n_items),
            gain,
            np.array(list(proximity.values())),
            {"baseline": baseline, "same_script": script},
            targets,
            settings,
        )
        rows.append(
            {
                "estimate": row.estimate,
                "ci_low": row.ci_low,
                "ci_high": row.ci_high,
                "p_value": row.p_value,
                "equivalence_p": row.equivalence_p,
            }
        )
    return pd.DataFrame(rows)


def proximity_characteristics(
    settings, trials: int, n_items: int = 200, base: Scenario = PASSAGE_CORRELATED, seed: int = 0, sizes=PROXIMITY_SIZES
) -> pd.DataFrame:
    """False-positive rate, power for PLANTED_SLOPE, interval coverage and the TOST's
    equivalence power of `proximity_slope` at each number of targets, with Monte-Carlo
    standard errors. Fine-tuning adds 3 points; every language has its own baseline
    (logit N(0, 0.3) around 30%) and its own fine-tuning gain (N(0, 2 points)), so that
    languages, not questions, are the units."""
    alpha = settings.alpha
    rows = []
    for size in sizes:
        study = proximity_study(size)
        for k, slope in enumerate((0.0, PLANTED_SLOPE)):
            scenario = base.with_(
                n_items=n_items,
                baseline=0.3,
                language_baseline_sd=0.3,
                ft_gain=0.03,
                language_gain_sd=0.02,
                proximity_slope=slope,
            )
            frame = proximity_trials(scenario, study, trials, settings, seed + 10 * size + k)
            checks = [
                ("false-positive rate (p < alpha)" if slope == 0 else "power (p < alpha)", frame.p_value < alpha),
                (
                    f"coverage of the {settings.confidence:.0%} interval",
                    (frame.ci_low <= slope) & (slope <= frame.ci_high),
                ),
            ]
            if slope == 0:
                checks.append(
                    (
                        f"equivalence power (TOST p < alpha, margin {settings.proximity_margin:g})",
                        frame.equivalence_p < alpha,
                    )
                )
            for check, hits in checks:
                rate = float(np.mean(hits))
                rows.append(
                    {
                        "targets": size,
                        "slope": slope,
                        "check": check,
                        "n_items": n_items,
                        "trials": trials,
                        "rate": rate,
                        "mc_se": math.sqrt(rate * (1 - rate) / trials),
                    }
                )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    """Print the operating characteristics as a markdown table (for docs/statistics.md)."""
    import argparse
    import time

    from .config import load_config
    from .stats.settings import StatsSettings

    parser = argparse.ArgumentParser(prog="python -m xlt.simulate", description=operating_characteristics.__doc__)
    parser.add_argument("--config", default="config/config.yaml", help="study config: its languages and stats settings")
    parser.add_argument(
        "--trials", type=int, help="trials per scenario (default: 5000 for relatedness, 600 for proximity)"
    )
    parser.add_argument("--items", type=int, default=200, help="questions per language")
    parser.add_argument("--questions-per-passage", type=int, default=PASSAGE_CORRELATED.questions_per_passage)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--design",
        choices=("relatedness", "proximity"),
        default="relatedness",
        help="relatedness: the config's primary test; proximity: proximity_slope at 8, 30 and 120 Belebele "
        "targets (Arabic the source)",
    )
    parser.add_argument(
        "--targets",
        default="8,30,120",
        help="with --design proximity: the numbers of target languages, comma-separated",
    )
    args = parser.parse_args(argv)
    args.trials = args.trials or (600 if args.design == "proximity" else 5000)
    config = load_config(args.config)
    started = time.perf_counter()
    if args.design == "proximity":
        base = PASSAGE_CORRELATED.with_(questions_per_passage=args.questions_per_passage)
        sizes = tuple(int(size) for size in args.targets.split(","))
        table = proximity_characteristics(
            StatsSettings.from_config(config["stats"]), args.trials, args.items, base, args.seed, sizes
        )
        print(table.to_markdown(index=False, floatfmt=".4f"))
        print(f"\n{args.trials} trials per size and slope of proximity_slope in {time.perf_counter() - started:.0f} s")
        return
    base = PASSAGE_CORRELATED.with_(questions_per_passage=args.questions_per_passage)
    table = operating_characteristics(
        config, StatsSettings.from_config(config["stats"]), args.trials, args.items, base, args.seed
    )
    print(table.to_markdown(index=False, floatfmt=".4f"))
    print(
        f"\n{args.trials} trials per scenario and version of {primary_name(config)} in "
        f"{time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
