"""External fine-tuning data: field maps onto Belebele's shape, their one-line errors,
the same number of examples per source, and a tiny model trained on a mapped file."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
import yaml
from test_finetune import settings as finetune_settings

from xlt.config import validate_config
from xlt.errors import XltError
from xlt.finetune import finetune
from xlt.models import ModelSpec
from xlt.prompts import load_template
from xlt.settings import PrepareDataSettings, PrepareTrainingSettings
from xlt.stages import prepare_data, prepare_training
from xlt.trainsets import TrainingSet, equalise, load_training_set, map_fields

RACE_LIKE = "data/race_like/arb_Arab.jsonl"
RACE_FIELDS = {"passage": "article", "question": "question", "options": "options", "answer": "answer"}


def race_like(repo, **overrides) -> TrainingSet:
    entry = {"path": str(repo / RACE_LIKE), "fields": RACE_FIELDS, "answer_as": "text", "index_base": 0, **overrides}
    return TrainingSet.from_config("arb_Arab", entry)


def test_race_like_file_maps_onto_belebele_rows(repo):
    rows = map_fields(load_training_set(race_like(repo)), race_like(repo))
    raw = [json.loads(line) for line in (repo / RACE_LIKE).read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(raw) == 12
    assert rows["correct_answer_num"].tolist() == [record["options"].index(record["answer"]) + 1 for record in raw]
    assert rows["correct_answer_num"].tolist()[:3] == [2, 3, 4]
    assert rows.loc[0, "flores_passage"] == raw[0]["article"] and rows.loc[0, "mc_answer2"] == raw[0]["options"][1]
    assert set(rows["split"]) == {"train"} and rows["item_id"].is_unique


def test_answers_as_letters_and_indices(tmp_path):
    frame = pd.DataFrame(
        {
            "q": ["one?", "two?"],
            "a": ["w", "x"],
            "b": ["y", "z"],
            "c": ["u", "v"],
            "d": ["s", "t"],
            "letter": ["b", "D"],
            "index": [0, 3],
        }
    )
    fields = {"question": "q", "options": ["a", "b", "c", "d"], "answer": "letter"}
    path = tmp_path / "mc.parquet"
    frame.to_parquet(path)
    letters = TrainingSet("tur_Latn", fields, "letter", path=str(path))
    assert map_fields(load_training_set(letters), letters)["correct_answer_num"].tolist() == [2, 4]
    indices = TrainingSet("tur_Latn", {**fields, "answer": "index"}, "index", path=str(path))
    mapped = map_fields(frame, indices)
    assert mapped["correct_answer_num"].tolist() == [1, 4] and (mapped["flores_passage"] == "").all()
    one_based = TrainingSet("tur_Latn", {**fields, "answer": "index"}, "index", index_base=1, path=str(path))
    with pytest.raises(
        XltError, match=r"row 1: field index \(fields.answer, answer_as index\) is 0; allowed: 1, 2, 3, 4"
    ):
        map_fields(frame, one_based)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"fields": {**RACE_FIELDS, "question": "query"}},
            r"race_like/arb_Arab.jsonl: fields.question: no field 'query' in the data; its fields: id, article",
        ),
        ({"fields": {**RACE_FIELDS, "options": ["a", "b", "c", "d"]}}, r"fields.options: no field 'a' in the data"),
        (
            {"answer_as": "letter"},
            r"arb_Arab.jsonl: row 1: field answer \(fields.answer, answer_as letter\) is 'في مخبز'; "
            r"allowed: A, B, C, D",
        ),
        (
            {"answer_as": "index"},
            r"row 1: field answer \(fields.answer, answer_as index\) is 'في مخبز'; allowed: 0, 1, 2, 3",
        ),
    ],
)
def test_wrong_field_map_stops_with_one_line_naming_the_field(repo, change, message):
    training_set = race_like(repo, **change)
    with pytest.raises(XltError, match=message) as caught:
        map_fields(load_training_set(training_set), training_set)
    assert "\n" not in str(caught.value)


def test_bad_rows_are_named_by_row_and_field(repo, tmp_path):
    records = [json.loads(line) for line in (repo / RACE_LIKE).read_text(encoding="utf-8").splitlines()[:3]]
    records[1]["options"] = records[1]["options"][:3]
    records[2]["answer"] = "none of these"
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8")
    training_set = race_like(repo, path=str(path))
    with pytest.raises(
        XltError,
        match=r"bad.jsonl: row 2: field options \(fields.options\) is 3 entries; allowed: a list of exactly 4 options",
    ):
        map_fields(load_training_set(training_set), training_set)
    records[1]["options"].append("x")
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8")
    with pytest.raises(
        XltError, match=r"bad.jsonl: row 3: field answer .* 'none of these', which matches none of the options"
    ):
        map_fields(load_training_set(training_set), training_set)


def test_every_source_trains_on_the_same_number_of_examples():
    frames = {
        "arb_Arab": pd.DataFrame({"item_id": [f"a{k}" for k in range(10)]}),
        "pes_Arab": pd.DataFrame({"item_id": [f"p{k}" for k in range(6)]}),
    }
    kept = equalise(frames, None, seed=3)
    assert {lang: len(frame) for lang, frame in kept.items()} == {"arb_Arab": 6, "pes_Arab": 6}
    assert kept["pes_Arab"]["item_id"].tolist() == [f"p{k}" for k in range(6)]
    assert kept["arb_Arab"]["item_id"].tolist() == sorted(kept["arb_Arab"]["item_id"], key=lambda item: int(item[1:]))
    assert len(set(kept["arb_Arab"]["item_id"])) == 6
    assert {len(frame) for frame in equalise(frames, 4, seed=3).values()} == {4}
    with pytest.raises(XltError, match="finetune.examples: 8 examples per source, but source pes_Arab has only 6"):
        equalise(frames, 8, seed=3)


def external_config(repo) -> dict:
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    config.pop("source_language", None)
    config["source_languages"] = ["arb_Arab"]
    config["finetune"] = {"data": {"arb_Arab": {"path": RACE_LIKE, "fields": RACE_FIELDS, "answer_as": "text"}}}
    return config


def test_external_data_needs_a_set_for_every_source(repo):
    config = external_config(repo)
    config["source_languages"] = ["arb_Arab", "pes_Arab"]
    with pytest.raises(XltError, match="finetune.data: no training set for source pes_Arab; give one for every source"):
        validate_config(config)
    both = copy.deepcopy(config)
    both["source_language"] = "arb_Arab"
    with pytest.raises(XltError, match="give exactly one of source_language, source_languages"):
        validate_config(both)
    bad = external_config(repo)
    bad["finetune"]["data"]["arb_Arab"]["answer_as"] = "number"
    with pytest.raises(XltError, match=r"finetune.data.arb_Arab.answer_as: 'number' is not one of"):
        validate_config(bad)


def test_with_external_data_every_belebele_item_is_a_test_item(repo, tmp_path, monkeypatch):
    """What prepare_data does where finetune.data is external (the rule passes all_test)."""
    monkeypatch.chdir(repo)
    config = validate_config(external_config(repo))
    langs = ["arb_Arab", "heb_Hebr"]
    outputs = [str(tmp_path / f"{lang}.parquet") for lang in langs]
    prepare_data(settings=PrepareDataSettings(data=config["data"], langs=langs, all_test=True), outputs=outputs)
    assert [set(pd.read_parquet(path)["split"]) for path in outputs] == [{"test"}, {"test"}]
    assert len(pd.read_parquet(outputs[0])) == 48
    training = str(tmp_path / "train" / "arb_Arab.parquet")
    settings = PrepareTrainingSettings(finetune=config["finetune"], sources=["arb_Arab"], seed=0)
    prepare_training(
        settings=settings,
        data_files={},
        outputs=[training],
        test_files=outputs,
        checks_out=str(tmp_path / "train" / "checks.json"),
    )
    assert len(pd.read_parquet(training)) == 12
    checks = json.loads((tmp_path / "train" / "checks.json").read_text())
    assert checks["arb_Arab"] == {
        "origin": RACE_LIKE,
        "rows_read": 12,
        "duplicates_dropped": [],
        "test_items": [],
        "examples": 12,
    }


def test_a_field_mapped_file_with_answers_as_text_fine_tunes_a_tiny_model(repo, prepared_tiny, tmp_path):
    training_set = race_like(repo)
    rows = map_fields(load_training_set(training_set), training_set).iloc[:4]
    settings = finetune_settings(max_steps=10)
    template = load_template(repo / "config" / "templates" / "arb_Arab.yaml")
    adapter = tmp_path / "adapter"
    finetune(
        prepared_tiny["tiny-dense"],
        ModelSpec("tiny-dense"),
        rows,
        template,
        settings,
        adapter,
        tmp_path / "ckpt",
        save_steps=5,
    )
    log = pd.read_csv(adapter / "train_log.csv")
    assert len(log) == 10
    assert log["loss"].iloc[-3:].mean() < log["loss"].iloc[:3].mean() - 0.2
    assert (adapter / "adapter_config.json").is_file()


@pytest.mark.plans
def test_the_default_plans_two_sources_and_the_paper_external_data(repo, tmp_path):
    """`snakemake -n`: the default fine-tunes 2 models x 2 sources; the paper fine-tunes
    7 x 2 on Global-MMLU (it cannot be downloaded here) with every Belebele item a test
    item. Planned in a folder of their own, whatever the checkout holds."""
    from snakemake_runs import planned_rules, shipped_study, snakemake_command

    study = shipped_study(tmp_path)
    default = planned_rules(repo / "Snakefile", study, study / "config" / "config.yaml")
    # Per model: base, one variant per source and the first source's format-only control.
    assert (
        default["finetune"] == 4
        and default["finetune_control"] == 2
        and default["predict"] == 2 * 4
        and default["prepare_training"] == 1
    )
    paper = planned_rules(repo / "Snakefile", study, study / "config" / "paper.yaml")
    assert (
        paper["finetune"] == 14
        and paper["finetune_control"] == 7
        and paper["predict"] == 7 * 4
        and paper["provenance"] == 1
    )
    config = yaml.safe_load((repo / "config" / "paper.yaml").read_text())
    assert {lang: entry["hub"]["id"] for lang, entry in config["finetune"]["data"].items()} == {
        "arb_Arab": "CohereForAI/Global-MMLU",
        "pes_Arab": "CohereForAI/Global-MMLU",
    }
    shell = snakemake_command(
        repo / "Snakefile", study, study / "config" / "paper.yaml", "-n", "-p", "--forcerun", "finetune"
    )
    assert "results/models/qwen3-4b/adapter-pes_Arab" in shell and "results/data/train/arb_Arab.parquet" in shell
