"""Answer extraction on realistic model outputs in the study's eight languages.

Each case is an output as the predict stage stores it (the completion prefix, "Answer:"
in the prompt's language for `direct` or the words that open a chain of thought for
`cot`, followed by what the model wrote), the fixture item whose options it answers
(None: options unknown), and the choice a careful reader would record (None: no single
stated answer). Failure modes of tiny models are covered in every language: repetition,
the prompt echoed back, an empty output, only the answer label, a letter followed by
option text, markdown.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pytest

from xlt.config import load_config
from xlt.extract import ANSWER_WORDS, Extraction, extract, extract_choice
from xlt.languages import language_table
from xlt.prompts import TEMPLATE_FIELDS, load_template, options_of, render

REPO = Path(__file__).resolve().parents[1]
LANGS = ["arb_Arab", "heb_Hebr", "amh_Ethi", "mlt_Latn", "tur_Latn", "eng_Latn", "pes_Arab", "urd_Arab"]


def fixture_rows(lang: str) -> list[dict]:
    path = REPO / "data" / "belebele_fixture" / f"{lang}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


ROWS = {lang: fixture_rows(lang) for lang in LANGS}
TEMPLATES = {lang: load_template(REPO / "config" / "templates" / f"{lang}.yaml") for lang in LANGS}


class Case(NamedTuple):
    lang: str
    output: str
    item: int | None  # row of data/belebele_fixture/<lang>.jsonl whose options apply
    expected: int | None


# Fixture items used below (English): 0 "When did the library open?" 1984/1994/2004/1990;
# 1 "Which plant did not grow well?" Tomatoes/Onions/Carrots/Beans; 2 "Why is the trip
# longer on Mondays?" The market is open/...; 4 "Which animal did Lina like most?"
# Lions/The giraffe/Monkeys/Bears; 7 "How many computers?" Ten/Twenty/Thirty/Three
# hundred; 9 "How long was the power cut?" Two hours/Six hours/One day/Three hours;
# 11 "In which place did Yusuf finish?" First/Second/Fifth/Third.
CASES = [
    # English, direct
    Case("eng_Latn", "Answer: B", 0, 2),
    Case("eng_Latn", "Answer: A", 0, 1),
    Case("eng_Latn", "Answer: b", 0, 2),
    Case("eng_Latn", "Answer: B. 1994", 0, 2),
    Case("eng_Latn", "Answer: D) Beans", 1, 4),
    Case("eng_Latn", "Answer: C. 1994", 0, None),  # the letter contradicts the option text
    Case("eng_Latn", "Answer: 1994", 0, 2),
    Case("eng_Latn", "Answer: The market is open", 2, 1),
    Case("eng_Latn", "Answer: A The market is open", 2, 1),
    Case("eng_Latn", "Answer: A man opened the library in 1994.", 0, None),
    Case("eng_Latn", "Answer:", 0, None),
    Case("eng_Latn", "", 0, None),
    Case("eng_Latn", "Answer: Answer: Answer: Answer:", 0, None),
    Case("eng_Latn", "Answer: B or C", 0, None),
    Case("eng_Latn", "Answer: B (or maybe C)", 0, None),
    Case("eng_Latn", "Answer: **B**", 0, 2),
    Case("eng_Latn", "**Answer:** (D)", 0, 4),
    Case("eng_Latn", "Answer: [C]", 1, 3),
    Case("eng_Latn", "Answer: B\nB\nB\nB\nB\nB", 0, 2),
    Case("eng_Latn", "Answer: 2", 7, 2),
    Case("eng_Latn", "Answer: Twenty computers", 7, 2),
    Case("eng_Latn", "Answer: Twenty", 7, 2),
    Case("eng_Latn", "B", None, 2),
    Case("eng_Latn", "(C)", None, 3),
    Case("eng_Latn", "D.", None, 4),
    Case("eng_Latn", "A good reason is that the passage says so.", 0, None),
    Case("eng_Latn", "I think", 0, None),
    Case("eng_Latn", "I think the answer is B because the passage says 1994.", 0, 2),
    Case("eng_Latn", "B) 1994\nThe passage says the library opened in 1994.", 0, 2),
    Case("eng_Latn", "The giraffe", 4, 2),
    Case("eng_Latn", "Answer: A A A A A A A A", 0, 1),
    Case("eng_Latn", "Answer: B C", 0, None),
    Case("eng_Latn", "Answer: A) 1984 B) 1994 C) 2004 D) 1990", 0, None),
    Case("eng_Latn", "Answer: 1994 (C)", 0, None),
    Case("eng_Latn", "<think>\nThe passage says 1994.\n</think>\n\nB", 0, 2),
    # English, chain of thought
    Case(
        "eng_Latn",
        "Let's think step by step. The passage says the library opened in 1994, not 1984. So the answer is B.",
        0,
        2,
    ),
    Case(
        "eng_Latn",
        "Let's think step by step. Option A says 1984, which is mentioned nowhere. A is wrong.\nAnswer: B",
        0,
        2,
    ),
    Case(
        "eng_Latn",
        "Let's think step by step. The answer could be A or B. Checking again, the passage says 1994.\nAnswer: B",
        0,
        2,
    ),
    Case(
        "eng_Latn",
        "Let's think step by step. Answer: A. Wait, that is wrong: the beans did not grow. The correct answer is D.",
        1,
        4,
    ),
    Case(
        "eng_Latn",
        "Let's think step by step. The beans did not grow well because of a dry summer.\nThe answer is Beans.",
        1,
        4,
    ),
    Case("eng_Latn", "Let's think step by step. Sara grows tomatoes, beans and onions in her garden.", 1, None),
    Case(
        "eng_Latn",
        "Let's think step by step.\n\n**Step 1:** The trip is longer on Mondays because the market is "
        "open.\n\n**Answer:** A",
        2,
        1,
    ),
    Case(
        "eng_Latn",
        "Let's think step by step. The council paid for the bridge. Therefore, the correct answer is (A).",
        3,
        1,
    ),
    Case(
        "eng_Latn",
        "Let's think step by step. The power was cut for six hours.\n\nThe final answer is $\\boxed{B}$",
        9,
        2,
    ),
    Case("eng_Latn", "Let's think step by step. The passage mentions that the library opened in", 0, None),
    Case("eng_Latn", "Let's think step by step. The answer is a bit unclear.", 0, None),
    Case(
        "eng_Latn", "Let's think step by step. It is either B or C, the passage does not say.\nAnswer: B or C", 0, None
    ),
    # Arabic
    Case("arb_Arab", "الإجابة: ب", 0, 2),
    Case("arb_Arab", "الإجابة: B", 0, 2),
    Case("arb_Arab", "الإجابة: (ج)", 3, 3),
    Case("arb_Arab", "الإجابة: أ", 2, 1),
    Case("arb_Arab", "الإجابة: د) الفاصولياء", 1, 4),
    Case("arb_Arab", "الإجابة: ١٩٩٤", 0, 2),
    Case("arb_Arab", "الإجابة: ٢", 0, 2),
    Case("arb_Arab", "الإجابة:", 0, None),
    Case("arb_Arab", "الإجابة: ب أو ج", 0, None),
    Case("arb_Arab", "الإجابة: **ج**", 4, 3),
    Case("arb_Arab", "الإجابة: ب\nالإجابة: ب\nالإجابة: ب\nالإجابة: ب", 0, 2),
    Case("arb_Arab", "الجواب الصحيح هو د", 1, 4),
    Case("arb_Arab", "لنفكّر خطوة بخطوة. يذكر النص أن المكتبة افتُتحت عام 1994 وليس 1984.\nالإجابة الصحيحة هي ب.", 0, 2),
    Case(
        "arb_Arab",
        "لنفكّر خطوة بخطوة. قد يبدو الخيار أ صحيحًا، لكن النص يقول إن الفاصولياء لم تنمُ جيدًا. فالإجابة هي د",
        1,
        4,
    ),
    Case("arb_Arab", "لنفكّر خطوة بخطوة. الرحلة أطول لأن السوق يكون مفتوحًا.\nإذن الإجابة هي: السوق يكون مفتوحًا", 2, 1),
    Case("arb_Arab", "لنفكّر خطوة بخطوة. النص طويل", 0, None),
    # Hebrew
    Case("heb_Hebr", "תשובה: B", 0, 2),
    Case("heb_Hebr", "תשובה: ב", 0, 2),
    Case("heb_Hebr", "תשובה: ג'", 3, 3),
    Case("heb_Hebr", "תשובה: (א)", 2, 1),
    Case("heb_Hebr", "תשובה: הג'ירפה", 4, 2),
    Case("heb_Hebr", "תשובה: ג'ירפה", 4, None),  # a loanword's ג', not option C
    Case("heb_Hebr", "תשובה: שעתיים", 9, 1),
    Case("heb_Hebr", "תשובה: ב-1984", 0, 1),  # "in 1984": ב- is a prefix, not option B
    Case("heb_Hebr", "תשובה:", 0, None),
    Case("heb_Hebr", "תשובה: ב או ג", 0, None),
    Case("heb_Hebr", "התשובה הנכונה היא ד", 1, 4),
    Case("heb_Hebr", "בואו נחשוב צעד אחר צעד. הקטע אומר שהספרייה נפתחה ב-1994.\nתשובה: B", 0, 2),
    Case("heb_Hebr", "בואו נחשוב צעד אחר צעד. אולי התשובה היא A, אבל הקטע אומר 1994. והתשובה הנכונה היא B.", 0, 2),
    Case("heb_Hebr", "תשובה: **ד**", 1, 4),
    # Amharic
    Case("amh_Ethi", "መልስ: B", 0, 2),
    Case("amh_Ethi", "መልስ: ለ", 0, 2),
    Case("amh_Ethi", "መልስ፡ C", 3, 3),
    Case("amh_Ethi", "መልሱ ሐ ነው።", 3, 3),
    Case("amh_Ethi", "ትክክለኛው መልስ D ነው", 1, 4),
    Case("amh_Ethi", "መልስ: 1994", 0, 2),
    Case("amh_Ethi", "መልስ: ባቄላ", 1, 4),
    Case("amh_Ethi", "መልስ: B ወይም C", 0, None),
    Case("amh_Ethi", "መልስ:", 0, None),
    Case("amh_Ethi", "መልስ: A መልስ: A መልስ: A መልስ: A", 2, 1),
    Case("amh_Ethi", "ደረጃ በደረጃ እናስብ። ምንባቡ ቤተ መጻሕፍቱ በ1994 እንደተከፈተ ይናገራል።\nመልስ: B", 0, 2),
    Case("amh_Ethi", "ደረጃ በደረጃ እናስብ። ምንባቡ", 0, None),
    # Maltese
    Case("mlt_Latn", "It-tweġiba: B", 0, 2),
    Case("mlt_Latn", "It-tweġiba: C.", 3, 3),
    Case("mlt_Latn", "It-twegiba: D", 1, 4),
    Case("mlt_Latn", "Tweġiba: A", 2, 1),
    Case("mlt_Latn", "It-tweġiba t-tajba hija B", 0, 2),
    Case("mlt_Latn", "It-tweġiba: Il-fażola", 1, 4),
    Case("mlt_Latn", "It-tweġiba: It-tieni", 11, 2),
    Case("mlt_Latn", "It-tweġiba: B jew C", 0, None),
    Case("mlt_Latn", "It-tweġiba:", 0, None),
    Case("mlt_Latn", "Ejja naħsbu pass pass. Is-silta tgħid li l-librerija fetħet fl-1994.\nIt-tweġiba: B", 0, 2),
    Case("mlt_Latn", "It-tweġiba: __C__", 4, 3),
    # Turkish
    Case("tur_Latn", "Cevap: B", 0, 2),
    Case("tur_Latn", "Cevap: B şıkkı", 0, 2),
    Case("tur_Latn", "Doğru cevap C'dir.", 3, 3),
    Case("tur_Latn", "CEVAP: D", 1, 4),
    Case("tur_Latn", "Yanıt: A", 2, 1),
    Case("tur_Latn", "YANIT: b", 0, 2),
    Case("tur_Latn", "Cevap: A şıkkı, çünkü metin pazar yerinden söz ediyor.", 2, 1),
    Case("tur_Latn", "Cevap: Fasulyeler", 1, 4),
    Case("tur_Latn", "Cevap: İki saat", 9, 1),
    Case("tur_Latn", "Cevap: B veya C", 0, None),
    Case("tur_Latn", "Cevap:", 0, None),
    Case(
        "tur_Latn", "Adım adım düşünelim. Metne göre kütüphane 1994'te açıldı. A şıkkı 1984, bu yanlış.\nCevap: B", 0, 2
    ),
    Case("tur_Latn", "Adım adım düşünelim. Metne göre", 0, None),
    # Persian
    Case("pes_Arab", "پاسخ: B", 0, 2),
    Case("pes_Arab", "پاسخ: ب", 0, 2),
    Case("pes_Arab", "پاسخ: الف", 2, 1),
    Case("pes_Arab", "پاسخ: ج)", 3, 3),
    Case("pes_Arab", "پاسخ: گزینه ۴", 1, 4),
    Case("pes_Arab", "پاسخ صحیح گزینه ۲ است.", 0, 2),
    Case("pes_Arab", "پاسخ: ۱۹۹۴", 0, 2),
    Case("pes_Arab", "پاسخ: لوبیا", 1, 4),
    Case("pes_Arab", "پاسخ: B یا C", 0, None),
    Case("pes_Arab", "پاسخ:", 0, None),
    Case("pes_Arab", "بیایید گام‌به‌گام فکر کنیم. متن می‌گوید کتابخانه در سال ۱۹۹۴ افتتاح شد.\nپاسخ: B", 0, 2),
    Case("pes_Arab", "پاسخ صحيح گزينه ۲ است", 0, 2),  # Arabic yeh in Persian words
    Case("pes_Arab", "پاسخ: د\n\nفقط با حرف گزینهٔ درست (A، B، C یا D) پاسخ دهید.", 1, 4),
    # Urdu
    Case("urd_Arab", "جواب: B", 0, 2),
    Case("urd_Arab", "جواب: ب", 0, 2),
    Case("urd_Arab", "جواب: (الف)", 2, 1),
    Case("urd_Arab", "جواب: د", 1, 4),
    Case("urd_Arab", "درست جواب C ہے۔", 3, 3),
    Case("urd_Arab", "صحیح جواب: ج", 3, 3),
    Case("urd_Arab", "جواب: ۲", 0, 2),
    Case("urd_Arab", "جواب: پھلیاں", 1, 4),
    Case("urd_Arab", "جواب: B یا C", 0, None),
    Case("urd_Arab", "جواب:", 0, None),
    Case("urd_Arab", "آئیے قدم بہ قدم سوچتے ہیں۔ عبارت کے مطابق لائبریری 1994 میں کھلی۔\nجواب: B", 0, 2),
    Case("urd_Arab", "جواب: B\nصرف درست آپشن کے حرف (A، B، C یا D) سے جواب دیں۔", 0, 2),
    # Answered in another language than the prompt's
    Case("arb_Arab", "الإجابة: Answer: C", 3, 3),
    Case("pes_Arab", "پاسخ: الإجابة هي ب", 0, 2),
    Case("heb_Hebr", "תשובה: The correct answer is D.", 1, 4),
]


def options_for(case: Case) -> list[str] | None:
    return None if case.item is None else options_of(ROWS[case.lang][case.item])


def case_id(case: Case) -> str:
    return f"{case.lang}:{case.output[:40]!r}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_realistic_outputs(case):
    assert extract_choice(case.output, options_for(case)) == case.expected


def test_the_table_is_large_and_covers_every_language():
    assert len(CASES) >= 80
    for lang in LANGS:
        ours = [case for case in CASES if case.lang == lang]
        assert len(ours) >= 8, lang
        assert any(case.expected is None for case in ours) and any(case.expected for case in ours), lang
        assert any(case.output.startswith(TEMPLATES[lang].cot_start) for case in ours), lang


def echoed_prompt(lang: str, item: int, prompt: str) -> str:
    return render(ROWS[lang][item], TEMPLATES[lang], prompt).user


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("prompt", ["direct", "cot"])
def test_an_echoed_prompt_is_not_an_answer(lang, prompt):
    template = TEMPLATES[lang]
    prefix = f"{template.answer}:" if prompt == "direct" else template.cot_start
    item = ROWS[lang][0]
    assert extract_choice(prefix + " " + echoed_prompt(lang, 0, prompt), options_of(item)) is None


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("prompt", ["direct", "cot"])
def test_an_answer_followed_by_the_echoed_prompt_stands(lang, prompt):
    template = TEMPLATES[lang]
    output = f"{template.answer}: C\n\n{echoed_prompt(lang, 3, prompt)}\n{template.answer}:"
    assert extract(output, options_of(ROWS[lang][3])) == Extraction(3, "phrase")


@pytest.mark.parametrize("lang", LANGS)
def test_echoed_options_after_the_label_are_not_an_answer(lang):
    row = ROWS[lang][0]
    listed = "\n".join(f"{letter}. {text}" for letter, text in zip("ABCD", options_of(row)))
    assert extract_choice(f"{TEMPLATES[lang].answer}:\n{listed}", options_of(row)) is None


@pytest.mark.parametrize("lang", LANGS)
def test_every_template_answer_label_is_read(lang):
    template = TEMPLATES[lang]
    assert template.answer.lower() in ANSWER_WORDS[lang].phrases
    for letter, value in zip("ABCD", range(1, 5)):
        assert extract(f"{template.answer}: {letter}") == Extraction(value, "phrase")
        assert extract(f"{template.cot_start} ...\n{template.answer}: {letter}.") == Extraction(value, "phrase")


def test_a_template_whose_answer_label_is_not_read_is_refused(tmp_path):
    from xlt.errors import XltError

    fields = {key: getattr(TEMPLATES["eng_Latn"], key) for key in TEMPLATE_FIELDS} | {"answer": "Reply"}
    path = tmp_path / "xyz_Latn.yaml"
    path.write_text(json.dumps(fields))
    with pytest.raises(XltError, match=r"xyz_Latn.yaml: answer label 'Reply' is not an answer phrase of the extractor"):
        load_template(path)


@pytest.mark.parametrize("config", ["config/config.yaml", "config/paper.yaml"])
def test_every_configured_language_has_answer_words(config):
    for code, language in language_table(load_config(REPO / config)).items():
        assert code in ANSWER_WORDS, code
        assert language.template in ANSWER_WORDS, language.template


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("أ", 1),
        ("ب", 2),
        ("ج", 3),
        ("د", 4),
        ("الف", 1),
        ("א", 1),
        ("ב", 2),
        ("ג", 3),
        ("ד", 4),
        ("ሀ", 1),
        ("ለ", 2),
        ("ሐ", 3),
        ("መ", 4),
        ("1", 1),
        ("٢", 2),
        ("٣", 3),
        ("۴", 4),
        ("۱", 1),
        ("(B)", 2),
        ("[B]", 2),
        ("B)", 2),
        ("B.", 2),
        ("**B**", 2),
        ("Ｃ", 3),
    ],
)
def test_label_forms(text, value):
    assert extract_choice(f"Answer: {text}") == value
    assert extract_choice(text) == value


@pytest.mark.parametrize(
    ("text", "options", "expected"),
    [
        ("Answer: 3", ["2", "3", "5", "7"], None),  # option 3, or option B's text "3"?
        ("Answer: 3", ["1", "2", "3", "4"], 3),
        ("Answer: 3 people", ["2 people", "3 people", "5 people", "7 people"], 2),
        ("Answer: B) 3 people", ["2 people", "3 people", "5 people", "7 people"], 2),
        ("Answer: Tomatoes and beans", ["Tomatoes", "Tomatoes and beans", "Beans", "Onions"], 2),
    ],
)
def test_numbers_and_option_texts(text, options, expected):
    assert extract_choice(text, options) == expected


def test_rule_phrase_only_for_an_answer_after_an_answer_phrase():
    """The inference engine stops a row once `extract(text).rule == "phrase"`."""
    assert extract("Answer: B").rule == "phrase"
    assert extract("The answer is C.").rule == "phrase"
    assert extract("B").rule == "label_line"
    assert extract("B) because the passage says so").rule == "first_line"
    assert extract("1994", ["1984", "1994", "2004", "1990"]).rule == "option_text"
    assert extract("Answer: B or C").rule == "ambiguous"
    assert extract("Answer:").rule == "none"
    assert extract("Answer: Because").rule == "none"
    assert extract("").rule == "none"


# `xlt extract`: JSON lines (DESIGN.md's form), a predictions parquet, or one text.


def json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_cli_adds_parsed_choice_to_json_lines(tmp_path):
    from xlt.cli import main

    chosen = [case for case in CASES if case.item is not None][::7]
    source = tmp_path / "outputs.jsonl"
    source.write_text(
        "".join(
            json.dumps({"output": c.output, "options": options_for(c), "lang": c.lang, "id": n}, ensure_ascii=False)
            + "\n"
            for n, c in enumerate(chosen)
        )
        + "\n"
        + json.dumps({"output": "Answer: C", "lang": "eng_Latn", "id": len(chosen)})
        + "\n",
        encoding="utf-8",
    )
    assert main(["extract", str(source), "-o", str(tmp_path / "out.jsonl")]) == 0
    records = json_lines(tmp_path / "out.jsonl")
    assert [r["parsed_choice"] for r in records] == [c.expected for c in chosen] + [3]
    assert [r["id"] for r in records] == list(range(len(chosen) + 1))
    assert records[0]["output"] == chosen[0].output and records[0]["lang"] == chosen[0].lang


def test_cli_reads_standard_input(monkeypatch, capsys):
    import io

    from xlt.cli import main

    monkeypatch.setattr(
        "sys.stdin",
        io.StringIO(
            json.dumps({"output": "בואו נחשוב צעד אחר צעד. הקטע", "lang": "heb_Hebr"}, ensure_ascii=False)
            + "\n"
            + json.dumps({"output": "תשובה: ג", "lang": "heb_Hebr"}, ensure_ascii=False)
            + "\n"
        ),
    )
    assert main(["extract"]) == 0
    assert [json.loads(line)["parsed_choice"] for line in capsys.readouterr().out.splitlines()] == [None, 3]


def predictions_file(tmp_path: Path) -> tuple[Path, Path]:
    """A predictions parquet of the contract (stale parsed_choice) and the prepared data."""
    from xlt.paths import PREDICTION_COLUMNS

    rows = ROWS["tur_Latn"][:3]
    data = pd.DataFrame(
        {
            "item_id": [f"{r['link']}#{r['question_number']}" for r in rows],
            "lang": "tur_Latn",
            **{f"mc_answer{i}": [r[f"mc_answer{i}"] for r in rows] for i in range(1, 5)},
        }
    )
    (tmp_path / "data").mkdir()
    data.to_parquet(tmp_path / "data" / "tur_Latn.parquet", index=False)
    answers = [int(r["correct_answer_num"]) for r in rows]
    predictions = pd.DataFrame(
        {
            "item_id": data["item_id"],
            "lang": "tur_Latn",
            "model": "m",
            "variant": "base",
            "prompt": "direct",
            "raw_output": ["Cevap: B", "Cevap: Fasulyeler", "Cevap: B veya C"],
            "parsed_choice": pd.array([1, 1, 1], dtype="Int64"),
            "answer": answers,
            "correct": [answer == 1 for answer in answers],
            "n_prompt_tokens": 90,
            "n_output_tokens": 3,
        },
        columns=list(PREDICTION_COLUMNS),
    )
    path = tmp_path / "tur_Latn.parquet"
    predictions.to_parquet(path, index=False)
    return path, tmp_path / "data"


def test_cli_re_extracts_a_predictions_parquet(tmp_path):
    from xlt.cli import main

    path, data = predictions_file(tmp_path)
    assert main(["extract", str(path), "--data", str(data), "-o", str(tmp_path / "out.parquet")]) == 0
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["parsed_choice"].tolist() == [2, 4, pd.NA]
    assert out["correct"].tolist() == [True, True, False]
    assert out["raw_output"].tolist() == pd.read_parquet(path)["raw_output"].tolist()


def test_cli_on_a_predictions_parquet_without_data_reads_labels_only(tmp_path, capsys):
    from xlt.cli import main

    path, _ = predictions_file(tmp_path)
    assert main(["extract", str(path)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["parsed_choice"] for r in records] == [2, None, None]
    assert records[0]["model"] == "m" and records[0]["raw_output"] == "Cevap: B"


def test_cli_reads_one_text(capsys):
    from xlt.cli import main

    assert main(["extract", "--text", "پاسخ: لوبیا", "--options", *options_of(ROWS["pes_Arab"][1])]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["parsed_choice"], record["rule"]) == (4, "phrase")


def test_cli_runs_as_a_command(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "xlt.cli", "extract", "--text", "Answer: B"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert json.loads(done.stdout)["parsed_choice"] == 2


@pytest.mark.parametrize(
    ("lines", "arguments", "message"),
    [
        ('{"output": "Answer: B"}\nnot json\n', [], "in.jsonl: line 2: not valid JSON"),
        ('{"text": "Answer: B"}\n', [], "in.jsonl: line 1: field output is missing or not text"),
        (
            '{"output": "Answer: B", "options": ["a", "b"]}\n',
            [],
            "in.jsonl: line 1: field options must be a list of 4 strings",
        ),
        ("", ["--options", "a", "b"], "--options goes with --text"),
        ("", ["--data", "nowhere"], "--data goes with a predictions .parquet input"),
    ],
)
def test_cli_errors_name_what_is_wrong(tmp_path, capsys, lines, arguments, message):
    from xlt.cli import main

    (tmp_path / "in.jsonl").write_text(lines)
    assert main(["extract", str(tmp_path / "in.jsonl"), *arguments]) == 2
    assert message in capsys.readouterr().err


def test_cli_names_missing_prepared_data(tmp_path, capsys):
    from xlt.cli import main

    path, _ = predictions_file(tmp_path)
    assert main(["extract", str(path), "--data", str(tmp_path / "nowhere")]) == 2
    assert f"--data {tmp_path / 'nowhere'}: no prepared data there" in capsys.readouterr().err
