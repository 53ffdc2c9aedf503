"""Answer extraction: which of the four options a model's text chooses, or None.

None is an answer too: it means the output states no recognisable choice, and the
share of non-None answers (`parse_rate`) measures format compliance apart from
knowledge. So the extractor never guesses: an answer must be stated (after an answer
phrase, as the whole output, as a labelled first line, or as the text of exactly one
option), and a statement naming two different options is None.

Phrases of every supported language are recognised in every output, because models
prompted in one language often answer in another (English or the fine-tuning
language). Letters are read in Latin and native forms, digits in Latin,
Arabic-Indic and Extended Arabic-Indic forms.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Answer phrases, longest first within a language so "the correct answer is" wins over
# "answer". Lower case; matching ignores case.
ANSWER_PHRASES = {
    "eng_Latn": [
        "the correct answer is", "the right answer is", "the answer is", "correct answer",
        "final answer", "the correct option is", "the correct choice is", "correct option",
        "correct choice", "answer",
    ],
    "arb_Arab": [
        "الإجابة الصحيحة هي", "الاجابة الصحيحة هي", "الإجابة الصحيحة", "الاجابة الصحيحة",
        "الإجابة هي", "الاجابة هي", "الجواب الصحيح هو", "الجواب الصحيح", "الجواب هو",
        "الخيار الصحيح هو", "الخيار الصحيح", "الإجابة", "الاجابة", "الجواب",
    ],
    "heb_Hebr": ["התשובה הנכונה היא", "התשובה הנכונה", "התשובה היא", "התשובה", "תשובה"],
    "amh_Ethi": ["ትክክለኛው መልስ", "ትክክለኛ መልስ", "መልሱ", "መልስ"],
    "mlt_Latn": [
        "it-tweġiba t-tajba hija", "it-tweġiba t-tajba", "it-tweġiba hija", "it-tweġiba",
        "tweġiba", "it-twegiba", "twegiba",
    ],
    "tur_Latn": ["doğru cevap", "doğru yanıt", "doğru seçenek", "cevap", "yanıt"],
    "pes_Arab": ["پاسخ صحیح", "پاسخ درست", "گزینه صحیح", "گزینه درست", "جواب درست", "پاسخ", "جواب"],
    "urd_Arab": ["درست جواب", "صحیح جواب", "درست آپشن", "جواب"],
}

# Words that may stand between an answer phrase and the letter: copulas, "option".
_LINK_WORDS = [
    "is", "would be", "will be", "option", "choice", "letter",
    "هي", "هو", "الخيار", "رقم",
    "היא", "הוא", "אפשרות",
    "ነው", "አማራጭ",
    "hija", "huwa", "l-għażla", "għażla",
    "şık", "seçenek", "şıkkı",
    "گزینه", "است", "ہے", "آپشن",
]
_LINK_PUNCT = r"[\s:：\-–—=→>,،.\"'«»“”‘’\(\[\*]"

# Labels: Latin letters, digits, and the native letters used to label options.
_NATIVE_LABELS = {
    "الف": 1, "أ": 1, "ا": 1, "ب": 2, "ج": 3, "د": 4,  # Arabic, Persian, Urdu (abjad order)
    "א": 1, "ב": 2, "ג": 3, "ד": 4,  # Hebrew
    "ሀ": 1, "ለ": 2, "ሐ": 3, "መ": 4,  # Ethiopic (Amharic option order)
}
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
_CONNECTORS = r"(?:or|and|/|,|veya|ya da|yoksa|או|ו|أو|او|یا|ወይም|jew|u)"

_native = "|".join(sorted(map(re.escape, _NATIVE_LABELS), key=len, reverse=True))
# A label must not run on into a word: "A man" is not an answer, "B." and "B)" are.
_LABEL = rf"(?P<label>[A-Da-d1-4]|{_native})(?![^\W_])"
_UPPER_OR_FOLLOWED = re.compile(r"[A-D1-4]|[^\W\d_a-z]")


def _phrase_pattern() -> re.Pattern:
    phrases = sorted({p for ps in ANSWER_PHRASES.values() for p in ps}, key=len, reverse=True)
    alternation = "|".join(re.escape(p) for p in phrases)
    return re.compile(rf"(?<![^\W\d_])(?:{alternation})(?![^\W\d_])", re.IGNORECASE)


_PHRASE = _phrase_pattern()
_LINKS = "|".join(sorted(map(re.escape, _LINK_WORDS), key=len, reverse=True))
_AFTER_PHRASE = re.compile(
    rf"^(?:{_LINK_PUNCT}|(?:{_LINKS})(?![^\W\d_]))*{_LABEL}(?P<rest>.*)", re.IGNORECASE | re.DOTALL
)
_SECOND_LABEL = re.compile(rf"^[\s\)\]\.\*\"'»”’]*{_CONNECTORS}[\s\(\[\*\"'«“‘]*{_LABEL}", re.IGNORECASE)
_WHOLE = re.compile(rf"^[\s\(\[\*\"'«“‘]*{_LABEL}[\s\)\]\.\*:\"'»”’]*$", re.IGNORECASE)
_FIRST_LINE = re.compile(rf"^[\s\(\[\*\"'«“‘]*{_LABEL}[\)\]\.:]", re.IGNORECASE)


@dataclass(frozen=True)
class Extraction:
    choice: int | None
    rule: str  # which rule decided: phrase, whole, first_line, option_text, ambiguous, none


def normalize(text: str) -> str:
    """NFKC (full-width letters to ASCII), native digits to ASCII, no markdown emphasis."""
    text = unicodedata.normalize("NFKC", text).translate(_DIGITS)
    return text.replace("**", "").replace("__", "")


def _label_value(label: str) -> int:
    if label in _NATIVE_LABELS:
        return _NATIVE_LABELS[label]
    if label.isdigit():
        return int(label)
    return "abcd".index(label.lower()) + 1


def _label_after(window: str) -> tuple[int | None, bool]:
    """The choice a phrase's continuation names: (choice, ambiguous)."""
    match = _AFTER_PHRASE.match(window)
    if not match:
        return None, False
    label, rest = match.group("label"), match.group("rest")
    # A lower-case Latin letter after "answer" is mostly the article ("answer a
    # question"): accept it only when punctuation or the end follows.
    if not _UPPER_OR_FOLLOWED.fullmatch(label) and rest.strip() and not re.match(r"^\s*[\.\):,;\]\n]", rest):
        return None, False
    choice = _label_value(label)
    second = _SECOND_LABEL.match(rest)
    if second and _label_value(second.group("label")) != choice:
        return None, True
    return choice, False


def _option_text_choice(text: str, options: list[str]) -> int | None:
    """The one option whose text the output quotes, if exactly one is quoted."""
    folded = text.casefold()
    found = set()
    spans = []
    # Longest options first, so "120 km" is not also read as "12".
    for index in sorted(range(len(options)), key=lambda i: -len(options[i])):
        needle = normalize(options[index]).casefold().strip(" .")
        if len(needle) < 2:
            continue
        for match in re.finditer(rf"(?<![^\W_]){re.escape(needle)}(?![^\W_])", folded):
            if not any(start <= match.start() < end for start, end in spans):
                found.add(index + 1)
                spans.append(match.span())
    return found.pop() if len(found) == 1 else None


def extract(text: str | None, options: list[str] | None = None) -> Extraction:
    if not text or not text.strip():
        return Extraction(None, "none")
    text = normalize(text)
    # The last stated answer wins: a chain of thought may weigh options before deciding.
    for phrase in reversed(list(_PHRASE.finditer(text))):
        window = text[phrase.end(): phrase.end() + 80]
        choice, ambiguous = _label_after(window)
        if ambiguous:
            return Extraction(None, "ambiguous")
        if choice is not None:
            return Extraction(choice, "phrase")
        if options:
            quoted = _option_text_choice(window.split("\n", 1)[0], options)
            if quoted is not None:
                return Extraction(quoted, "phrase")
    whole = _WHOLE.match(text)
    if whole:
        return Extraction(_label_value(whole.group("label")), "whole")
    first_line = text.strip().split("\n", 1)[0]
    line = _FIRST_LINE.match(first_line)
    if line:
        return Extraction(_label_value(line.group("label")), "first_line")
    if options:
        quoted = _option_text_choice(text, options)
        if quoted is not None:
            return Extraction(quoted, "option_text")
    return Extraction(None, "none")


def extract_choice(text: str | None, options: list[str] | None = None) -> int | None:
    """The chosen option (1-4), or None when the text states no single choice."""
    return extract(text, options).choice


def fingerprint() -> str:
    """Hash of this module's source: a workflow param, so a changed extractor reruns
    scoring (and only scoring)."""
    import hashlib
    from pathlib import Path

    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
