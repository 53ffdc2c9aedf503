"""Reading predictions in the contract's layout, re-extracting answers from the raw
text, and accuracy with its interval and parse rate per model x variant x prompt x
language."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from .choices import DEFAULT_NORMALISATION, cloze_choice, read_cloze
from .diagnostics import top_share
from .errors import XltError
from .extract import extract_choice
from .languages import Language
from .paths import (
    ACCURACY_COLUMNS,
    CHOICE_PROMPT,
    CLOZE_PROMPT,
    COT_COLUMNS,
    PREDICTION_COLUMNS,
    ROTATION_COLUMNS,
    STOP_REASONS,
    discover_predictions,
)
from .prompts import LETTERS, ROTATIONS

_KEY = ("model", "variant", "prompt", "lang")


def _shown(value) -> str:
    """A cell as the user wrote it (numpy scalars as plain numbers)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _check_optional_choice(frame: pd.DataFrame, column: str, origin: str) -> None:
    """A column of option numbers 1-4 or null, where a tree has it (forced_choice,
    debiased_choice), made Int64; any other value stops with its row."""
    if column not in frame.columns:
        return
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = frame.index[frame[column].notna() & ~values.isin([1, 2, 3, 4])]
    if len(bad):
        raise XltError(
            f"{origin}: column {column}, row {bad[0] + 1}: {_shown(frame.at[bad[0], column])}; allowed: 1-4 or null"
        )
    frame[column] = values.astype("Int64")


def check_predictions(frame: pd.DataFrame, origin: str, expected: dict[str, str] | None = None) -> pd.DataFrame:
    """Contract columns present and well-typed, one row per item, and the file's place
    in the layout agreeing with its rows; errors name the file, column and row."""
    missing = [column for column in PREDICTION_COLUMNS if column not in frame.columns]
    if missing:
        raise XltError(f"{origin}: missing column {missing[0]}; predictions need {', '.join(PREDICTION_COLUMNS)}")
    kept = [column for column in (*COT_COLUMNS, *ROTATION_COLUMNS) if column in frame.columns]
    frame = frame.loc[:, [*PREDICTION_COLUMNS, *kept]].reset_index(drop=True)
    # A categorical column (pandas writes one to parquet as a dictionary, with every
    # category of the frame it was split from) is read as its values: the stages rename
    # variants and add prompts, which a categorical refuses with a traceback.
    frame = frame.astype(
        {column: object for column in frame.columns if isinstance(frame[column].dtype, pd.CategoricalDtype)}
    )
    missing_id = frame.index[frame["item_id"].isna()]
    if len(missing_id):
        raise XltError(f"{origin}: column item_id, row {missing_id[0] + 1}: empty; every row needs its item's id")
    _check_keys(frame, origin)
    for column, value in (expected or {}).items():
        wrong = frame.index[frame[column].astype(str) != value]
        if len(wrong):
            raise XltError(
                f"{origin}: column {column}, row {wrong[0] + 1}: {frame.at[wrong[0], column]!r} but the "
                f"file's place in the layout says {value!r}"
            )
    bad = frame.index[~frame["raw_output"].map(lambda raw: isinstance(raw, str))]
    if len(bad):
        raise XltError(
            f"{origin}: column raw_output, row {bad[0] + 1}: {_shown(frame.at[bad[0], 'raw_output'])}; "
            "allowed: text (the model's output)"
        )
    for column in ("n_prompt_tokens", "n_output_tokens"):
        count = pd.to_numeric(frame[column], errors="coerce")
        bad = frame.index[frame[column].notna() & ~((count >= 0) & (count % 1 == 0))]
        if len(bad):
            raise XltError(
                f"{origin}: column {column}, row {bad[0] + 1}: {_shown(frame.at[bad[0], column])}; "
                "allowed: a whole number from 0, or null"
            )
    parsed = pd.to_numeric(frame["parsed_choice"], errors="coerce")
    # True == 1 in Python: a boolean would be read as option 1
    boolean = frame["parsed_choice"].map(lambda value: isinstance(value, bool | np.bool_))
    bad = frame.index[(frame["parsed_choice"].notna() & (~parsed.isin([1, 2, 3, 4]) | boolean))]
    if len(bad):
        raise XltError(
            f"{origin}: column parsed_choice, row {bad[0] + 1}: "
            f"{_shown(frame.at[bad[0], 'parsed_choice'])}; allowed: 1-4 or null"
        )
    answer = pd.to_numeric(frame["answer"], errors="coerce")
    bad = frame.index[~answer.isin([1, 2, 3, 4])]
    if len(bad):
        raise XltError(f"{origin}: column answer, row {bad[0] + 1}: {_shown(frame.at[bad[0], 'answer'])}; allowed: 1-4")
    _check_optional_choice(frame, "forced_choice", origin)
    if "forced_choice" in frame.columns:
        # compare scores CoT rows by forced_choice and `xlt score` by the stated answer
        # first: the two agree only where a forced answer never contradicts a stated one.
        stated = parsed.astype("Int64")
        bad = frame.index[
            (stated.notna() & frame["forced_choice"].notna() & (stated != frame["forced_choice"])).to_numpy(bool)
        ]
        if len(bad):
            raise XltError(
                f"{origin}: column forced_choice, row {bad[0] + 1}: {_shown(frame.at[bad[0], 'forced_choice'])} but "
                f"parsed_choice is {_shown(frame.at[bad[0], 'parsed_choice'])}; forced_choice is the stated answer "
                "where the output states one, else the likeliest label after the answer phrase"
            )
    if "stop_reason" in frame.columns:
        bad = frame.index[frame["stop_reason"].notna() & ~frame["stop_reason"].isin(STOP_REASONS)]
        if len(bad):
            raise XltError(
                f"{origin}: column stop_reason, row {bad[0] + 1}: "
                f"{_shown(frame.at[bad[0], 'stop_reason'])}; allowed: {', '.join(STOP_REASONS)} or null"
            )
    _check_scored_cells(frame, origin)
    duplicated = frame.index[frame.duplicated("item_id")]
    if len(duplicated):
        raise XltError(
            f"{origin}: column item_id, row {duplicated[0] + 1}: item "
            f"{frame.at[duplicated[0], 'item_id']!r} appears twice"
        )
    frame["parsed_choice"] = parsed.astype("Int64")
    frame["answer"] = answer.astype(int)
    correct = (frame["parsed_choice"] == frame["answer"]).fillna(False).astype(bool)
    given = frame["correct"].map({True: True, False: False, "True": True, "False": False, "true": True, "false": False})
    unknown = frame.index[given.isna() & frame["correct"].notna()]
    if len(unknown):
        raise XltError(
            f"{origin}: column correct, row {unknown[0] + 1}: {_shown(frame.at[unknown[0], 'correct'])}; "
            "allowed: true, false or null"
        )
    disagree = frame.index[given.notna() & (given != correct)]
    if len(disagree):
        row = disagree[0]
        found = frame.loc[row]
        raise XltError(
            f"{origin}: column correct, row {row + 1}: {_shown(found['correct'])} but parsed_choice "
            f"{found['parsed_choice']} "
            f"and answer {found['answer']} say {bool(correct[row])}; correct must be parsed_choice == answer"
        )
    frame["correct"] = correct
    return frame


def _rotation_list(raw) -> list[int] | None:
    """A `rotation_choices` cell as its list of 4 options (1-4), None if it is not one."""
    try:
        chosen = json.loads(raw)
    except (TypeError, ValueError):
        return None
    return (
        chosen
        if isinstance(chosen, list) and len(chosen) == ROTATIONS and all(type(c) is int and 1 <= c <= 4 for c in chosen)
        else None
    )


def _check_keys(frame: pd.DataFrame, origin: str) -> None:
    """The key columns hold text (item_id: text or a whole number), so that rows of
    several files compare and sort as the same keys."""
    for column in ("item_id", "model", "variant", "prompt", "lang"):
        allowed = (str, int, np.integer) if column == "item_id" else (str,)
        bad = frame.index[
            ~frame[column].map(
                lambda value, allowed=allowed: isinstance(value, allowed) and not isinstance(value, bool)
            )
        ]
        if len(bad):
            raise XltError(
                f"{origin}: column {column}, row {bad[0] + 1}: {_shown(frame.at[bad[0], column])}; allowed: text"
                + (" or a whole number" if column == "item_id" else "")
            )


def _check_cloze_scores(raw: str) -> None:
    """A cloze row's option scores (choices.read_cloze) as log-probabilities: at most 0."""
    for number, option in enumerate(read_cloze(raw), 1):
        for name, value in (("logprob", option.logprob), ("unconditional_logprob", option.unconditional_logprob)):
            if value > 0:
                raise XltError(
                    f"option {number}: {name} {value!r} is above 0, so not a log-probability; allowed: a number "
                    "up to 0, or null"
                )


def _check_choice_scores(raw: str, parsed, first_rotation: int | None) -> tuple[str, str] | None:
    """A choice row's raw_output is its four label log-probabilities, and its
    parsed_choice (and the unrotated prompt's choice, rotation_choices[0]) one of the
    likeliest labels: compare counts parsed_choice and never reads the scores, so one
    that contradicts them would change accuracy unseen. (column, why) where it fails."""
    try:
        labels = json.loads(raw)
    except ValueError:
        labels = None
    if not (
        isinstance(labels, dict)
        and sorted(labels) == list(LETTERS)
        and all(isinstance(value, int | float) and not isinstance(value, bool) for value in labels.values())
    ):
        return "raw_output", (
            f"{_shown(raw)}; allowed: the four label log-probabilities as JSON, "
            '{"A": <number>, "B": <number>, "C": <number>, "D": <number>}'
        )
    logprobs = [float(labels[letter]) for letter in LETTERS]
    if any(math.isnan(value) or value > 0 for value in logprobs):
        return "raw_output", f"{_shown(raw)}; allowed: log-probabilities, numbers up to 0"
    likeliest = [number for number, value in enumerate(logprobs, 1) if value == max(logprobs)]
    named = " or ".join(LETTERS[number - 1] for number in likeliest)
    for column, chosen in (("parsed_choice", parsed), ("rotation_choices", first_rotation)):
        if chosen is not None and not pd.isna(chosen) and int(chosen) not in likeliest:
            where = "" if column == "parsed_choice" else " (its first entry, the unrotated prompt's choice)"
            return column, (
                f"option {int(chosen)}{where} but raw_output's likeliest label is {named}; a choice row "
                "chooses the label with the largest log-probability"
            )
    return None


def _check_scored_cells(frame: pd.DataFrame, origin: str) -> None:
    """Cloze rows' raw_output is their options' log-probabilities (choices.read_cloze);
    choice rows' their labels', which their choice follows (_check_choice_scores); and
    choice rows' rotation columns, where the file has them, hold options 1-4 on every
    choice row or on none (an older tree)."""
    for row in frame.index[frame["prompt"] == CLOZE_PROMPT]:
        try:
            _check_cloze_scores(frame["raw_output"].loc[row])
        except XltError as error:
            raise XltError(f"{origin}: column raw_output, row {row + 1} (a cloze row): {error}") from None
    _check_optional_choice(frame, "debiased_choice", origin)
    choice = frame["prompt"] == CHOICE_PROMPT
    for column in ROTATION_COLUMNS:
        if column in frame.columns and frame.loc[choice, column].notna().any():
            lacking = frame.index[choice & frame[column].isna()]
            if len(lacking):
                raise XltError(
                    f"{origin}: column {column}, row {lacking[0] + 1}: null where other choice rows have one; "
                    "the rotations are on every choice row of a cell or on none (a tree from before them)"
                )
    if "rotation_choices" in frame.columns:
        bad = frame.index[
            frame["rotation_choices"].notna()
            & frame["rotation_choices"].map(lambda raw: pd.isna(raw) or _rotation_list(raw) is None)
        ]
        if len(bad):
            raise XltError(
                f"{origin}: column rotation_choices, row {bad[0] + 1}: {_shown(frame.at[bad[0], 'rotation_choices'])}; "
                "allowed: a JSON list of the 4 options (1-4) chosen in rotations 0-3, or null"
            )
    rotations = frame["rotation_choices"] if "rotation_choices" in frame.columns else pd.Series(None, frame.index)
    for row in frame.index[choice]:
        chosen = _rotation_list(rotations.loc[row]) if pd.notna(rotations.loc[row]) else None
        # raw_output is text here (check_predictions)
        raw = str(frame.at[row, "raw_output"])
        failed = _check_choice_scores(raw, frame.at[row, "parsed_choice"], chosen[0] if chosen else None)
        if failed:
            raise XltError(f"{origin}: column {failed[0]}, row {row + 1} (a choice row): {failed[1]}")


def _read(path) -> pd.DataFrame:
    if not Path(path).is_file():  # pyarrow would read a folder as a dataset, and wait on a fifo
        raise XltError(f"{path}: is a folder or a device, not a parquet file")
    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged or foreign file
        raise XltError(
            f"{path}: not a readable parquet file ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"
        ) from None


def load_predictions(root: str | Path) -> pd.DataFrame:
    """Every prediction file under `root` (the contract's layout) as one frame."""
    frames = []
    for found in discover_predictions(root):
        expected = {"model": found.model, "variant": found.variant, "prompt": found.prompt, "lang": found.lang}
        frames.append(check_predictions(_read(found.path), str(found.path), expected))
    return pd.concat(frames, ignore_index=True)


def load_prediction_files(paths: Sequence[str | Path]) -> pd.DataFrame:
    frames = [check_predictions(_read(path), str(path)) for path in paths]
    return pd.concat(frames, ignore_index=True)


def choose_cloze(predictions: pd.DataFrame, normalisation: str) -> pd.DataFrame:
    """The cloze rows' `parsed_choice` and `correct` chosen again from their option
    scores under `normalisation` (prompts.cloze_normalisation); a row without a choice
    (a NaN score) stops, naming it: counted wrong, it would lower the knowledge score
    unseen."""
    rows = predictions.index[predictions["prompt"] == CLOZE_PROMPT]
    if not len(rows):
        return predictions
    chosen = predictions.copy()
    reasons = []
    for row in rows:
        found = chosen.loc[row]
        choice, reason = cloze_choice(read_cloze(found["raw_output"]), normalisation)
        chosen.at[row, "parsed_choice"] = choice if choice is not None else pd.NA
        if reason is not None:
            reasons.append(f"{found['model']} {found['variant']} {found['lang']} item {found['item_id']}: {reason}")
    if reasons:
        raise XltError(
            f"{len(reasons)} cloze row(s) have no choice under prompts.cloze_normalisation {normalisation}: "
            f"{'; '.join(reasons[:3])}; a NaN never wins an argmax, and no other option is known to beat it "
            "(pmi alone reads unconditional_logprob)"
        )
    chosen["parsed_choice"] = chosen["parsed_choice"].astype("Int64")
    chosen["correct"] = (chosen["parsed_choice"] == chosen["answer"]).fillna(False).astype(bool)
    if "forced_choice" in chosen.columns:  # a cloze row has no other answer to fall back on
        chosen.loc[rows, "forced_choice"] = chosen.loc[rows, "parsed_choice"]
    return chosen


def rescore(
    predictions: pd.DataFrame, data: pd.DataFrame | None, cloze_normalisation: str = DEFAULT_NORMALISATION
) -> pd.DataFrame:
    """Answers re-extracted from `raw_output` with the current extractor; `data` (the
    prepared Belebele rows, all languages) supplies each item's options. Without it
    (`xlt extract` on a predictions file alone) quoted option texts are not read. The
    cloze rows' options are chosen again under `cloze_normalisation` (choose_cloze)."""
    option_lists: Sequence[list[str] | None]
    if data is None:
        option_lists = [None] * len(predictions)
    else:
        options = data.set_index(["lang", "item_id"])[["mc_answer1", "mc_answer2", "mc_answer3", "mc_answer4"]]
        keys = pd.MultiIndex.from_frame(predictions[["lang", "item_id"]])
        missing = keys.difference(cast(pd.MultiIndex, options.index))  # set_index of two columns
        if len(missing):
            raise XltError(f"predictions of item {missing[0][1]} ({missing[0][0]}) have no row in the prepared data")
        option_lists = options.loc[keys].to_numpy().tolist()
    rescored = choose_cloze(predictions, cloze_normalisation).copy()
    # A choice or cloze row's raw output holds log-probabilities, not text to read.
    generated = (~rescored["prompt"].isin([CHOICE_PROMPT, CLOZE_PROMPT])).to_numpy()
    choices = [
        extract_choice(raw, opts) if text else parsed
        for raw, opts, text, parsed in zip(rescored["raw_output"], option_lists, generated, rescored["parsed_choice"])
    ]
    rescored["parsed_choice"] = pd.array(choices, dtype="Int64")
    rescored["correct"] = (rescored["parsed_choice"] == rescored["answer"]).fillna(False).astype(bool)
    if "forced_choice" in rescored.columns:
        # The stated answer where the current extractor finds one; else the forced pass's.
        rescored["forced_choice"] = rescored["parsed_choice"].fillna(rescored["forced_choice"]).astype("Int64")
    return rescored


def _truncated(items: pd.DataFrame, budgets: dict[str, int]) -> pd.Series:
    """Per row: whether the continuation ran out of its token budget (1.0), did not
    (0.0), or cannot be told (NaN). `stop_reason` says so where the row has it; else a
    generated output that used its prompt's whole budget (`budgets`, prompt -> max new
    tokens) was cut; for a prompt whose budget is not known, NaN."""
    budget = items["prompt"].map(budgets).astype(float)
    derived = (items["n_output_tokens"].astype(float) >= budget).astype(float).where(budget.notna())
    if "stop_reason" not in items.columns:
        return derived
    stated = items["stop_reason"].map({reason: float(reason == "budget") for reason in STOP_REASONS})
    return stated.fillna(derived)


def _rotation_diagnostics(group: pd.DataFrame) -> pd.Series:
    """debiased_accuracy, binding_consistency and letter_prior of one cell's rows (NaN
    where they have no rotations: other cells, older trees)."""
    names = ["debiased_accuracy", "binding_consistency", "letter_prior"]
    if "rotation_choices" not in group.columns:
        return pd.Series(np.nan, index=names)
    chosen = [found for found in map(_rotation_list, group["rotation_choices"].dropna()) if found is not None]
    debiased = group["debiased_choice"]
    accuracy = float((debiased == group["answer"]).fillna(False).mean()) if debiased.notna().any() else np.nan
    if not chosen:
        return pd.Series([accuracy, np.nan, np.nan], index=names)
    # the letter that showed the chosen option in rotation r (prompts.rotated)
    letters = pd.Series(
        [(option - 1 - rotation) % ROTATIONS for options in chosen for rotation, option in enumerate(options)]
    )
    consistency = float(np.mean([len(set(options)) == 1 for options in chosen]))
    return pd.Series([accuracy, consistency, float(letters.value_counts().iloc[0] / len(letters))], index=names)


def format_diagnostics(items: pd.DataFrame, budgets: dict[str, int] | None = None) -> pd.DataFrame:
    """Per model x variant x prompt x language, what its accuracy is made of
    (docs/diagnostics.md): accuracy of the forced answers (`forced_choice` where a row
    has it, else the stated answer), accuracy among stated answers, the share of the
    most frequent stated label (1.0: one letter for every item), the share of outputs
    cut by the token budget and the share of empty outputs."""
    rows = items.assign(
        forced_correct=(
            items["forced_choice"].fillna(items["parsed_choice"])
            if "forced_choice" in items.columns
            else items["parsed_choice"]
        )
        .eq(items["answer"])
        .fillna(False),
        correct_parsed=items["correct"].where(items["parsed_choice"].notna()).astype(float),
        truncated=_truncated(items, budgets or {}),
        empty=items["raw_output"].fillna("").astype(str).str.strip().eq(""),
    )
    grouped = rows.groupby(list(_KEY), sort=True)
    rotations = [column for column in ("answer", *ROTATION_COLUMNS) if column in rows.columns]
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "forced_accuracy": grouped["forced_correct"].mean().astype(float),
                    "accuracy_given_parsed": grouped["correct_parsed"].mean(),
                    "top_choice_share": grouped["parsed_choice"].agg(top_share),
                    "truncation_rate": grouped["truncated"].mean(),
                    "empty_rate": grouped["empty"].mean().astype(float),
                }
            ),
            grouped[rotations].apply(_rotation_diagnostics),
        ],
        axis=1,
    ).reset_index()


def accuracy_table(
    items: pd.DataFrame, languages: dict[str, Language], *, confidence: float, budgets: dict[str, int] | None = None
) -> pd.DataFrame:
    """Accuracy with a Wilson interval (sound near 0 and 1 and for small n), the
    share of outputs with a recognisable answer and the format diagnostics."""
    from statsmodels.stats.proportion import proportion_confint

    unknown = sorted(set(items["lang"]) - set(languages))
    if unknown:
        raise XltError(f"predictions for language {unknown[0]}, which the config does not list")
    grouped = (
        items.groupby(list(_KEY), sort=True)
        .agg(n=("correct", "size"), n_correct=("correct", "sum"), n_parsed=("parsed_choice", "count"))
        .reset_index()
    )
    low, high = proportion_confint(grouped["n_correct"], grouped["n"], alpha=1 - confidence, method="wilson")
    grouped["accuracy"] = grouped["n_correct"] / grouped["n"]
    # The closed form leaves rounding dust (1e-17 above an accuracy of 0).
    grouped["ci_low"] = np.minimum(np.asarray(low), grouped["accuracy"]).clip(0, 1)
    grouped["ci_high"] = np.maximum(np.asarray(high), grouped["accuracy"]).clip(0, 1)
    grouped["parse_rate"] = grouped["n_parsed"] / grouped["n"]
    grouped["family"] = grouped["lang"].map(lambda code: languages[code].family)
    grouped["script"] = grouped["lang"].map(lambda code: languages[code].script)
    grouped = grouped.merge(format_diagnostics(items, budgets), on=list(_KEY), how="left")
    return grouped.loc[:, list(ACCURACY_COLUMNS)]
