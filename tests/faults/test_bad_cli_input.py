"""The `xlt` commands: bad input is one line on stderr and exit status 2, a traceback
only with --verbose or XLT_VERBOSE=1, and no output file appears unless it is whole."""

from __future__ import annotations

import json

import pytest
from faultlib import REPO

from xlt.cli import main
from xlt.errors import XltError


def _compare(tmp_path, config, predictions=None):
    """Exit status of `xlt compare`, which must have written nothing."""
    predictions = predictions or tmp_path / "predictions"
    status = main(
        ["compare", "--predictions", str(predictions), "--config", str(config), "--out", str(tmp_path / "stats")]
    )
    assert not (tmp_path / "stats").exists()
    return status


def test_config_that_is_not_yaml(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("XLT_VERBOSE", raising=False)
    config = tmp_path / "config.yaml"
    config.write_text("languages:\n  arb_Arab: {family: Semitic\n")
    assert _compare(tmp_path, config) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"xlt: error: {config}: not valid YAML: while parsing a flow mapping")
    assert err.count("\n") == 1


def test_config_that_is_not_a_mapping(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("- arb_Arab\n- heb_Hebr\n")
    assert _compare(tmp_path, config) == 2
    assert capsys.readouterr().err == f"xlt: error: {config}: expected a mapping of settings at the top level\n"


def test_config_file_missing(tmp_path, capsys):
    assert _compare(tmp_path, tmp_path / "nope.yaml") == 2
    assert capsys.readouterr().err == f"xlt: error: {tmp_path / 'nope.yaml'}: config file not found\n"


def test_config_mistake_reads_as_in_the_workflow(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(
        (REPO / "config" / "config.yaml").read_text().replace("equivalence_margin: 0.05", "equivalence_margin: 5")
    )
    assert _compare(tmp_path, config) == 2
    assert (
        capsys.readouterr().err
        == f"xlt: error: {config}: stats.equivalence_margin: 5 is greater than or equal to the maximum of 1\n"
    )


def test_predictions_folder_missing(tmp_path, capsys):
    assert _compare(tmp_path, REPO / "config" / "config.yaml", tmp_path / "elsewhere") == 2
    assert capsys.readouterr().err == f"xlt: error: {tmp_path / 'elsewhere'}: predictions folder not found\n"


def test_extract_stops_at_a_bad_line_and_writes_no_output(tmp_path, capsys):
    source = tmp_path / "outputs.jsonl"
    good = {"output": "The answer is B", "options": ["a", "b", "c", "d"], "lang": "eng_Latn"}
    source.write_text(json.dumps(good) + "\n" + '{"output": "A"' + "\n")
    target = tmp_path / "parsed.jsonl"
    assert main(["extract", str(source), "-o", str(target)]) == 2
    assert (
        capsys.readouterr().err
        == f"xlt: error: {source}: line 2: not valid JSON (Expecting ',' delimiter at column 15)\n"
    )
    assert list(tmp_path.iterdir()) == [source]


def test_extract_input_missing(tmp_path, capsys):
    assert main(["extract", str(tmp_path / "none.jsonl")]) == 2
    assert capsys.readouterr().err == f"xlt: error: {tmp_path / 'none.jsonl'}: file not found\n"


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_verbose_raises_with_the_traceback(tmp_path, monkeypatch, how):
    argv = [
        "compare",
        "--predictions",
        str(tmp_path),
        "--config",
        str(tmp_path / "nope.yaml"),
        "--out",
        str(tmp_path / "stats"),
    ]
    if how == "flag":
        argv = ["--verbose", *argv]
    else:
        monkeypatch.setenv("XLT_VERBOSE", "1")
    with pytest.raises(XltError, match="config file not found"):
        main(argv)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("xlt: error: ") and err.count("\n") == 1, err
    return err[len("xlt: error: ") : -1]


def test_extract_output_into_a_folder_or_symlink(tmp_path, capsys):
    source = tmp_path / "outputs.jsonl"
    source.write_text(json.dumps({"output": "Answer: B"}) + "\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    assert main(["extract", str(source), "-o", str(folder)]) == 2
    assert (
        _one_line(capsys)
        == f"{folder}: is a folder, not a regular file; xlt replaces only regular files: remove it or write elsewhere"
    )
    link = tmp_path / "link.jsonl"
    link.symlink_to(source)
    assert main(["extract", str(source), "-o", str(link)]) == 2
    assert (
        _one_line(capsys)
        == f"{link}: is a symbolic link, not a regular file; xlt replaces only regular files: remove it or "
        "write elsewhere"
    )
    assert link.is_symlink() and json.loads(source.read_text()) == {"output": "Answer: B"}


def test_extract_output_with_a_lone_surrogate_is_written_as_its_escape(tmp_path, capsys):
    source = tmp_path / "outputs.jsonl"
    source.write_text('{"output": "Answer: B \\ud800"}\n')
    target = tmp_path / "parsed.jsonl"
    assert main(["extract", str(source), "-o", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == '{"output": "Answer: B \\ud800", "parsed_choice": 2}\n'
    assert main(["extract", "--text", "Answer: C \udce4"]) == 0
    assert json.loads(capsys.readouterr().out)["parsed_choice"] == 3


def test_extract_with_an_unknown_language(tmp_path, capsys):
    source = tmp_path / "outputs.jsonl"
    source.write_text(json.dumps({"output": "Jibu: B", "lang": "swh_Latn"}) + "\n")
    assert main(["extract", str(source)]) == 2
    assert _one_line(capsys).startswith(
        f"{source}: line 1: field lang is 'swh_Latn', not a language the extractor has words for (eng_Latn, arb_Arab, "
    )


def test_extract_data_that_is_not_parquet(tmp_path, capsys):
    import pandas as pd

    predictions = tmp_path / "arb_Arab.parquet"
    pd.DataFrame({"x": [1]}).to_parquet(predictions)
    not_parquet = tmp_path / "data.csv"
    not_parquet.write_text("lang,item_id\n")
    assert main(["extract", str(predictions), "--data", str(not_parquet)]) == 2
    assert _one_line(capsys).startswith(f"{predictions}: ")  # the predictions file is read (and refused) first
    fake = tmp_path / "fake.parquet"
    fake.write_text("not parquet at all")
    assert main(["extract", str(fake)]) == 2
    assert _one_line(capsys).startswith(f"{fake}: not a readable parquet file (")


def test_extract_input_that_is_not_utf8_or_a_folder(tmp_path, capsys):
    source = tmp_path / "outputs.jsonl"
    source.write_bytes(b'\xef\xbb\xbf{"output": "Answer: B"}\n{"output": "caf\xe9"}\n')
    assert main(["extract", str(source)]) == 2
    assert _one_line(capsys) == f"{source}: line 2: not UTF-8 text; save the file as UTF-8"
    assert main(["extract", str(tmp_path)]) == 2
    assert _one_line(capsys) == f"{tmp_path}: is a folder, not a JSON-lines file"


@pytest.mark.parametrize(
    "value, reason",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply to read"),
        ("9" * 5000, "Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits"),
    ],
    ids=["nested too deeply", "integer of 5000 digits"],
)
def test_extract_a_json_line_python_cannot_read(tmp_path, capsys, value, reason):
    source = tmp_path / "outputs.jsonl"
    source.write_text('{"output": "Answer: B", "x": ' + value + "}\n")
    assert main(["extract", str(source)]) == 2
    assert _one_line(capsys) == f"{source}: line 1: not valid JSON ({reason})"


def test_compare_a_cell_that_is_a_folder(tmp_path, capsys):
    cell = tmp_path / "predictions" / "m1" / "base" / "direct" / "arb_Arab.parquet"
    cell.mkdir(parents=True)
    assert _compare(tmp_path, REPO / "config" / "config.yaml") == 2
    assert _one_line(capsys) == f"{cell}: is a folder or a device, not a parquet file"


def test_extract_reads_lines_ended_by_cr_or_crlf(tmp_path, capsys):
    """As data preparation reads JSON lines: LF, CRLF or a CR alone ends a line."""
    source = tmp_path / "outputs.jsonl"
    source.write_bytes(
        b'{"output": "Answer: B"}\r{"output": "Answer: C"}\r\n\r\n{"output": "Answer: D\xe2\x80\xa8"}\n{"output": "x"\r'
    )
    assert main(["extract", str(source)]) == 2
    assert _one_line(capsys) == f"{source}: line 5: not valid JSON (Expecting ',' delimiter at column 15)"
    source.write_bytes(source.read_bytes().removesuffix(b'{"output": "x"\r'))
    assert main(["extract", str(source)]) == 0
    assert [json.loads(line)["parsed_choice"] for line in capsys.readouterr().out.split("\n")[:-1]] == [2, 3, 4]


@pytest.mark.parametrize(
    "column, value, allowed",
    [
        ("raw_output", None, "None; allowed: text (the model's output)"),
        ("n_output_tokens", -5, "-5; allowed: a whole number from 0, or null"),
    ],
)
def test_extract_a_predictions_row_that_breaks_the_contract(tmp_path, capsys, column, value, allowed):
    import pandas as pd

    predictions = tmp_path / "arb_Arab.parquet"
    row = {
        "item_id": "l#1",
        "lang": "arb_Arab",
        "model": "m",
        "variant": "base",
        "prompt": "cot",
        "raw_output": "Answer: B",
        "parsed_choice": 2,
    }
    row |= {"answer": 2, "correct": True, "n_prompt_tokens": 10, "n_output_tokens": 3, column: value}
    pd.DataFrame([row]).to_parquet(predictions)
    assert main(["extract", str(predictions), "-o", str(tmp_path / "out.parquet")]) == 2
    assert _one_line(capsys) == f"{predictions}: column {column}, row 1: {allowed}"
    assert not (tmp_path / "out.parquet").exists()


def test_extract_json_lines_to_a_parquet_name(tmp_path, capsys):
    source = tmp_path / "outputs.jsonl"
    source.write_text(json.dumps({"output": "Answer: B"}) + "\n")
    assert main(["extract", str(source), "-o", str(tmp_path / "parsed.parquet")]) == 2
    assert (
        _one_line(capsys)
        == f"-o {tmp_path / 'parsed.parquet'}: JSON lines are written as JSON lines; a .parquet output goes "
        "with a predictions .parquet input"
    )


# --- every subcommand checks its own arguments (issue 24, finding 10) -----------------


def _stage_argv(name: str) -> list[str]:
    """`xlt NAME --settings {}` with a stand-in for every other required argument."""
    from xlt.cli import build_parser

    parser = build_parser()
    command = parser._subparsers._group_actions[0].choices[name]
    argv = [name]
    for action in command._actions:
        if not action.required or action.dest == "settings":
            continue
        value = {"variant": "base", "threads": "1"}.get(action.dest, f"stand-in-{action.dest}")
        argv += [action.option_strings[0], *([value] if action.nargs != "+" else [f"{value}.parquet"])]
    return [*argv, "--settings", "{}"]


@pytest.mark.parametrize(
    "name",
    [
        "prepare-data",
        "prepare-training",
        "prepare-model",
        "finetune",
        "merge",
        "predict",
        "score",
        "report",
        "provenance",
    ],
)
def test_every_stage_says_which_settings_keys_it_lacks(name, tmp_path, capsys, monkeypatch):
    """Finding 10: `xlt prepare-training --settings '{}'` (and prepare-data, predict,
    provenance, ...) ended in a raw KeyError traceback."""
    monkeypatch.chdir(tmp_path)
    assert main(_stage_argv(name)) == 2
    assert _one_line(capsys).startswith("--settings: lacks ")
    assert list(tmp_path.iterdir()) == []


def test_compare_items_that_are_not_there_is_one_line(tmp_path, capsys):
    from xlt.config import load_config
    from xlt.jobs import settings_json

    settings = settings_json(load_config(REPO / "config" / "config.yaml"), "compare")
    compare = ["compare", "--items", str(tmp_path / "items.parquet"), "--settings", settings]
    compare += ["--out", str(tmp_path / "stats")]
    assert main(compare) == 2
    assert _one_line(capsys) == f"--items {tmp_path / 'items.parquet'}: no such file"
    (tmp_path / "items.parquet").write_text("not parquet")
    assert main(compare) == 2
    assert _one_line(capsys).startswith(f"{tmp_path / 'items.parquet'}: not a readable parquet file")
    assert not (tmp_path / "stats").exists()


def _prepare_data_argv(tmp_path, outputs) -> list[str]:
    from xlt.config import load_config
    from xlt.jobs import settings_json

    config = load_config(REPO / "config" / "config.yaml")
    config["data"]["fixture_dir"] = str(REPO / "data" / "belebele_fixture")
    return [
        "prepare-data",
        "--settings",
        settings_json(config, "prepare_data"),
        "--out",
        *[str(tmp_path / name) for name in outputs],
    ]


LANGS = ["arb_Arab", "heb_Hebr", "amh_Ethi", "mlt_Latn", "tur_Latn", "eng_Latn", "pes_Arab", "urd_Arab"]


@pytest.mark.parametrize(
    "outputs, message",
    [
        ([f"{lang}.parquet" for lang in LANGS[:7]], "--out: 7 files for 8 languages (arb_Arab, heb_Hebr, "),
        ([f"{lang}.parquet" for lang in [*LANGS, "tha_Thai"]], "--out: 9 files for 8 languages (arb_Arab, heb_Hebr, "),
        (["arb_Arab.parquet"] * 8, "is given 8 times; give each file once"),
        (
            [f"{lang}.parquet" for lang in [LANGS[1], LANGS[0], *LANGS[2:]]],
            "heb_Hebr.parquet is in arb_Arab's place; give one for each of the languages in the order ",
        ),
    ],
)
def test_prepare_data_outputs_that_do_not_match_the_languages(tmp_path, capsys, outputs, message):
    """Finding 10: `xlt prepare-data --out` with fewer or more files than languages, or
    one path eight times, exited 0 with languages skipped or overwritten."""
    assert main(_prepare_data_argv(tmp_path, outputs)) == 2
    assert message in _one_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_file_given_twice_to_score_would_count_its_rows_twice(tmp_path, capsys):
    from xlt.config import load_config
    from xlt.jobs import settings_json

    settings = settings_json(load_config(REPO / "config" / "config.yaml"), "score")
    argv = [
        "score",
        "--settings",
        settings,
        "--predictions",
        "p.parquet",
        "./p.parquet",
        "--data",
        "d.parquet",
        "--accuracy",
        "a.csv",
        "--items",
        "i.parquet",
    ]
    assert main(argv) == 2
    assert _one_line(capsys) == "--predictions: p.parquet is given 2 times; give each file once"
