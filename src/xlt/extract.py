"""Answer extraction: which of the four options a model's text chooses, or None.

None is an answer too: it means the output states no recognisable choice, and the
share of non-None answers (`parse_rate`) measures format compliance apart from
knowledge. So the extractor never guesses. A choice counts when it is stated:

- `phrase`: after an answer phrase ("Answer: B", "الإجابة هي ب", "התשובה: ג",
  "the correct answer is option (C)", "Answer: Paris" quoting an option's text);
  the last statement wins, so a chain of thought may weigh options before deciding;
- `label_line`: a line that is nothing but a label ("B", "(B)", "**ב**");
- `first_line`: a first line opened by a closed label ("B) Paris", "C. because ...");
- `option_text`: lines that repeat exactly one option's text.

A statement naming two options ("B or C"), a label contradicted by the option text it
is followed by ("B. Rome" when Rome is option C), or a digit that is also another
option's text is `ambiguous` (None). A statement listing all four labels, or a label
followed by more labelled lines, is the prompt's instruction or options echoed back,
not an answer. An "A" followed by a Latin word is the English article ("A man ..."),
and a digit followed by a word is a quantity ("3 people"), unless the text after them
is the labelled option's own text.

All words live in one table, `ANSWER_WORDS` (per language) and `LABELS` (per script).
Every language's words are recognised in every output, because models prompted in one
language often answer in another (English, or the fine-tuning language).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property

from .invisible import INVISIBLE


@dataclass(frozen=True)
class AnswerWords:
    """The words of one language that state an answer."""

    phrases: tuple[str, ...]  # announce the answer: "answer", "correct answer"
    before: tuple[str, ...] = ()  # may stand between phrase and label: copulas, "option"
    after: tuple[str, ...] = ()  # may follow a bare "A" or digit: "because", a final copula
    either: tuple[str, ...] = ()  # join two labels into two answers: "or", "and"
    clitics: tuple[str, ...] = ()  # prefixes written onto a phrase: Arabic wa-/fa-, Hebrew ve-/she-


# The label each template in config/templates prompts with is one of its language's
# phrases (tests/test_extract.py checks this for every template and configured language).
ANSWER_WORDS = {
    "eng_Latn": AnswerWords(
        phrases=(
            "answer",
            "correct answer",
            "right answer",
            "final answer",
            "best answer",
            "correct option",
            "correct choice",
            "right option",
            "best option",
            "my answer",
        ),
        before=(
            "is",
            "would be",
            "will be",
            "should be",
            "must be",
            "probably",
            "likely",
            "maybe",
            "perhaps",
            "therefore",
            "then",
            "either",
            "the",
            "option",
            "choice",
            "letter",
            "boxed",
        ),
        after=("is", "because", "since", "as"),
        either=("or", "and"),
    ),
    "arb_Arab": AnswerWords(
        phrases=(
            "الإجابة",
            "الجواب",
            "إجابة",
            "الإجابة الصحيحة",
            "الجواب الصحيح",
            "الإجابة النهائية",
            "الخيار الصحيح",
            "الاختيار الصحيح",
        ),
        before=("هي", "هو", "الخيار", "الاختيار", "الحرف", "رقم"),
        after=("هي", "هو", "لأن"),
        either=("أو", "و"),
        clitics=("و", "ف"),
    ),
    "heb_Hebr": AnswerWords(
        phrases=("התשובה", "תשובה", "התשובה הנכונה", "תשובה נכונה", "התשובה הסופית"),
        before=("היא", "הוא", "אפשרות", "האפשרות", "האות"),
        after=("היא", "הוא", "כי"),
        either=("או",),
        clitics=("ו", "ש"),
    ),
    "amh_Ethi": AnswerWords(
        phrases=("መልስ", "መልሱ", "ትክክለኛው መልስ", "ትክክለኛ መልስ", "ትክክለኛው አማራጭ"),
        before=("አማራጭ", "ፊደል"),
        after=("ነው", "ምክንያቱም"),
        either=("ወይም", "እና"),
    ),
    "tir_Ethi": AnswerWords(
        phrases=("መልሲ", "ትኽክለኛ መልሲ"),
        before=("ኣማራጺ",),
        after=("እዩ",),
        either=("ወይ",),
    ),
    "mlt_Latn": AnswerWords(
        phrases=(
            "it-tweġiba",
            "tweġiba",
            "it-tweġiba t-tajba",
            "it-tweġiba korretta",
            "it-tweġiba finali",
            "l-għażla t-tajba",
            "l-għażla korretta",
        ),
        before=("hija", "huwa", "l-għażla", "għażla", "l-ittra", "ittra"),
        after=("hija", "huwa", "għax"),
        either=("jew", "u"),
    ),
    "tur_Latn": AnswerWords(
        phrases=("cevap", "yanıt", "doğru cevap", "doğru yanıt", "doğru seçenek", "doğru şık", "cevabım", "yanıtım"),
        before=("şık", "şıkkı", "seçenek", "seçeneği", "harf", "ise"),
        after=("şıkkı", "seçeneği", "şıkkıdır", "seçeneğidir", "çünkü", "olmalı"),
        either=("veya", "ya da", "yoksa", "ve"),
    ),
    "pes_Arab": AnswerWords(
        phrases=(
            "پاسخ",
            "جواب",
            "پاسخ صحیح",
            "پاسخ درست",
            "پاسخ نهایی",
            "جواب صحیح",
            "جواب درست",
            "گزینه صحیح",
            "گزینه درست",
        ),
        before=("گزینه", "حرف", "عبارت است از"),
        after=("است", "می‌باشد", "صحیح", "درست", "چون", "زیرا"),
        either=("یا",),
    ),
    "urd_Arab": AnswerWords(
        phrases=("جواب", "درست جواب", "صحیح جواب", "حتمی جواب", "درست آپشن", "صحیح آپشن"),
        before=("آپشن", "حرف", "ہے"),
        after=("ہے", "کیونکہ"),
        either=("یا", "اور"),
    ),
}

# Option labels by script, in option order. Latin letters are also read in lower case;
# Arabic-script labels follow abjad order (Persian and Urdu tests write الف ب ج د).
LABELS = {
    "Latn": ("A", "B", "C", "D"),
    "Arab": ("أ|الف", "ب", "ج", "د"),
    "Hebr": ("א", "ב", "ג", "ד"),
    "Ethi": ("ሀ", "ለ", "ሐ", "መ"),
    "digits": ("1", "2", "3", "4"),  # Arabic-Indic and Extended Arabic-Indic are mapped to these
}
# "A"/"a" is also the English article and a digit also a quantity: these count only when
# closed (end, punctuation, a word of `after`) or followed by their option's own text.
_WEAK_LABELS = {"a", "1", "2", "3", "4"}

# normalize(): presentation forms and full-width letters by NFKC, then one spelling per
# letter (hamza-carrying alefs, Arabic/Persian yeh and kaf), native digits to ASCII,
# and out: vowel marks, tatweel, invisible characters, markdown emphasis.
_FOLD = {
    **{c: "ا" for c in "أإآٱ"},
    "İ": "I",
    "ي": "ی",
    "ى": "ی",
    "ك": "ک",
    "ۀ": "ه",
    **{chr(0x0660 + d): str(d) for d in range(10)},
    **{chr(0x06F0 + d): str(d) for d in range(10)},
}
_DROP = (
    [chr(c) for c in range(0x064B, 0x0660)]
    + ["\u0670", "\u0640"]  # Arabic harakat, dagger alef, tatweel
    + [chr(c) for c in range(0x0591, 0x05C8) if chr(c) not in "\u05be\u05c0\u05c3\u05c6"]  # Hebrew points
    + list(INVISIBLE)
    + ["*", "`", "_"]
)
_TRANSLATE = str.maketrans({**_FOLD, **{c: None for c in _DROP}})


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).translate(_TRANSLATE)


def _without_accents(word: str) -> str:
    return unicodedata.normalize(
        "NFC", "".join(c for c in unicodedata.normalize("NFD", word) if not unicodedata.combining(c))
    )


_JOINERS = {" ": r"\s+", "-": r"[-\s]?"}  # words may be split by any spaces, hyphens dropped


def _alternation(words, backwards: bool = False) -> str:
    """A regex matching any of `words` (lower case), also without accents ("twegiba" for
    "tweġiba") or with a dotless ı written as i; `backwards` matches them in reversed
    text. It is built as a trie so that the engine tries one branch per character."""
    trie: dict = {}
    for word in words:
        for form in {word, _without_accents(word), _without_accents(word).replace("ı", "i")}:
            node = trie
            form = normalize(form).lower()
            for char in form[::-1] if backwards else form:
                node = node.setdefault(char, {})
            node[""] = {}

    def emit(node: dict) -> str:
        branches = [_JOINERS.get(char, re.escape(char)) + emit(child) for char, child in node.items() if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
        return f"(?:{body})?" if "" in node else body

    return emit(trie)


def _words(field: str) -> str:
    return _alternation(word for words in ANSWER_WORDS.values() for word in getattr(words, field))


def _label_values() -> dict[str, int]:
    values = {}
    for forms in LABELS.values():
        for value, form in enumerate(forms, start=1):
            for variant in form.split("|"):
                values[normalize(variant).lower()] = value
    return values


_LABEL_VALUE = _label_values()
_NOT_LETTER = r"(?![^\W\d_])"
_NOT_AFTER_LETTER = r"(?<![^\W\d_])"
# A label stands alone: "B." and "B)" are labels, "Because" and "B2" are not. A Hebrew
# letter with a geresh before more letters is a loanword sound ("ג'ירפה"), and one joined
# by a hyphen or maqaf to a word is a prefix ("ב-1994", in 1994).
_HEBREW_PREFIX = r"[בהלמשוכ][-־](?=\w)"
_LABEL = (
    rf"(?P<label>{'|'.join(sorted(map(re.escape, _LABEL_VALUE), key=len, reverse=True))})"
    r"(?![^\W_])(?!(?<=[אבגד])(?:['׳][^\W\d_]|[-־]\w))"
)
# What may stand between an answer phrase and its label or option text: punctuation,
# brackets, line breaks, an ellipsis (not a full stop, which ends the statement), a
# Hebrew prefix, and `before` words. The runs are possessive (`*+`, `{2,}+`): no label
# begins inside a lead, so giving characters back never finds a match, and a run of
# dots that could be split in 2^n ways is read once (linear time on any output).
_LEAD_PUNCT = rf"[\s:：\-–—=→>,،;؛\"'«»“”‘’()\[\]{{}}<#$\\|፡፥፦፤~_]|\.{{2,}}+|…|{_HEBREW_PREFIX}"
_LEAD = rf"(?:{_LEAD_PUNCT}|(?:{_words('before')}){_NOT_LETTER})*+"
_EITHER = rf"(?:{_words('either')}){_NOT_LETTER}"

# Phrases are searched in the reversed text, so the search meets the last one first and
# stops at the first that states an answer: the end of a long chain of thought.
_PHRASE_BACKWARDS = re.compile(
    _NOT_AFTER_LETTER
    + f"""(?:{
        _alternation(
            (
                clitic + phrase
                for words in ANSWER_WORDS.values()
                for phrase in words.phrases
                for clitic in ("", *words.clitics)
            ),
            backwards=True,
        )
    })"""
    + _NOT_LETTER
)
_STATED_LABEL = re.compile(rf"{_LEAD}{_LABEL}")
_LEAD_PUNCT_RUN = re.compile(rf"(?:{_LEAD_PUNCT})*+")
_LEAD_WORD = re.compile(rf"(?:{_words('before')}){_NOT_LETTER}")
_CLOSING = re.compile(r"[^\S\n]*[)\]}>.:：,،'׳’\"»”\-–—]*[^\S\n]*")
# Another label joined to the first ("B or C", "B, C", "B/C", "B C", "(A, B, C or D)").
_NEXT_LABEL = re.compile(
    rf"(?:[\s()\[\]'\"]*(?:[,،/&]|{_EITHER})(?:[\s(\[]|{_EITHER}|(?:{_words('before')}){_NOT_LETTER})*|[^\S\n]+){_LABEL}"
)
_CLOSED = re.compile(rf"[^\S\n]*(?:$|\n|[^\w\s]|(?:{_words('after')}){_NOT_LETTER})")
_LATIN_WORD = re.compile(r"[^\S\n]+[A-Za-z\u00c0-\u024f]")
_ANY_WORD = re.compile(r"[^\S\n]+[^\W\d_]")
_BRACKETED_LABEL = re.compile(rf"[^\S\n]*[(\[]{_LABEL}[)\]]")
# A line opened by a closed label ("B) Paris", "(C) ...", "- D. ..."), and a line that
# is nothing but a label ("B", "**B**", "Option B").
_LINE_OPENING = re.compile(rf"[^\w\n]*{_LABEL}[^\S\n]*[.):\]][^\S\n]*")
_LABEL_LINE = re.compile(rf"^[^\w\n]*(?:(?:{_words('before')})[^\S\n]+)?{_LABEL}[^\w\n]*$", re.MULTILINE)
_SPACE = re.compile(r"\s*")
_HAS_WORD = re.compile(r"[^\W_]")


def _run_end(run: re.Pattern[str], text: str, pos: int) -> int:
    """Where a run of `run` (a pattern that may match nothing, so matches everywhere)
    starting at `pos` ends."""
    match = run.match(text, pos)
    assert match is not None, f"{run.pattern} matches the empty string"
    return match.end()


@dataclass(frozen=True)
class Extraction:
    choice: int | None
    rule: str  # which rule decided: phrase, label_line, first_line, option_text, ambiguous, none


_NONE = Extraction(None, "none")
_AMBIGUOUS = Extraction(None, "ambiguous")


@dataclass(frozen=True)
class _Options:
    texts: tuple[str, ...]  # normalized, in option order; "" for an empty option

    @classmethod
    def of(cls, options: list[str] | None) -> _Options | None:
        if not options:
            return None
        return cls(tuple(normalize(str(option)).strip().rstrip(".。۔።") for option in options))

    def starting_at(self, text: str, pos: int) -> int | None:
        """The option (1-4) whose text `text` continues with at `pos`, longest first."""
        best = None
        for value, option in enumerate(self.texts, start=1):
            if not option or (best and len(option) <= len(self.texts[best - 1])):
                continue
            end = pos + len(option)
            if text[pos:end].casefold() == option.casefold() and not _HAS_WORD.match(text, end):
                best = value
        return best

    def number_elsewhere(self, label: str, value: int) -> bool:
        """A digit label that is also the text of another option ("3" when option B is "3")."""
        return label.isdigit() and any(text == label for i, text in enumerate(self.texts, start=1) if i != value)

    @cached_property
    def _longest_first(self) -> tuple[tuple[int, str], ...]:
        """(value, casefolded text) of the non-empty options, longest first."""
        ordered = sorted(range(1, 5), key=lambda v: -len(self.texts[v - 1]))
        return tuple((value, self.texts[value - 1].casefold()) for value in ordered if self.texts[value - 1])

    def repeated_in(self, line: str) -> int | None:
        """The option a line consists of (once or repeated), ignoring punctuation."""
        folded = line.casefold()
        for value, option in self._longest_first:
            if option in folded and not _HAS_WORD.search(folded.replace(option, " ")):
                return value
        return None


def _past_option_text(text: str, end: int, options: _Options | None) -> tuple[int, int | None]:
    """After a label ending at `end`: where the option text that follows it ends, and
    which option that text is ("B) Paris"), or (`end`, None)."""
    if not options:
        return end, None
    start = _run_end(_CLOSING, text, end)
    quoted = options.starting_at(text, start)
    return (start + len(options.texts[quoted - 1]), quoted) if quoted else (end, None)


def _read_label(text: str, match: re.Match, options: _Options | None) -> Extraction | None:
    """The answer a label match states: a choice, ambiguous, or None when the label is
    not a stated answer (an article, a quantity, an echoed instruction or option list)."""
    label = match.group("label")
    value = _LABEL_VALUE[label]
    if options and options.number_elsewhere(label, value):
        return _AMBIGUOUS
    end, quoted = _past_option_text(text, match.end("label"), options)
    if quoted not in (None, value):
        return _AMBIGUOUS
    if label in _WEAK_LABELS and quoted is None and not _CLOSED.match(text, end) and not _NEXT_LABEL.match(text, end):
        word = _LATIN_WORD if label == "a" else _ANY_WORD
        if word.match(text, end):
            return None
    named = {value}
    position = end
    while following := _NEXT_LABEL.match(text, position):
        after, quoted = _past_option_text(text, following.end(), options)
        if following.group("label") in _WEAK_LABELS and quoted is None and not _CLOSED.match(text, after):
            break
        named.add(_LABEL_VALUE[following.group("label")])
        position = after
    if len(named) == 4:
        return None  # "(A, B, C or D)": the instruction, echoed
    if len(named) > 1:
        return _AMBIGUOUS
    line_end = text.find("\n", position)
    next_line = _LINE_OPENING.match(text, _run_end(_SPACE, text, line_end)) if line_end >= 0 else None
    if next_line and _LABEL_VALUE[next_line.group("label")] != value:
        return None  # the option list, echoed
    return Extraction(value, "phrase")


def _phrase_ends_last_first(text: str):
    """Where each answer phrase of `text` ends, last phrase first."""
    for phrase in _PHRASE_BACKWARDS.finditer(text[::-1]):
        yield len(text) - phrase.start()


def _last_statement(text: str, options: _Options | None) -> tuple[Extraction, int] | None:
    """The last answer stated after an answer phrase, and where its label stands."""
    for end in _phrase_ends_last_first(text):
        labelled = _STATED_LABEL.match(text, end)
        if labelled:
            found = _read_label(text, labelled, options)
            if found is not None:
                return found, labelled.start("label")
        if options:
            for start in _lead_ends(text, end):
                quoted = options.starting_at(text, start)
                if quoted is not None:
                    label = _BRACKETED_LABEL.match(text, start + len(options.texts[quoted - 1]))
                    if label and _LABEL_VALUE[label.group("label")] != quoted:
                        return _AMBIGUOUS, start  # "Paris (C)" when Paris is option B
                    return Extraction(quoted, "phrase"), start
    return None


def _lead_ends(text: str, pos: int):
    """Where an option's text may start after an answer phrase: after each punctuation
    mark or word of the lead ("is", "the"), since options may begin with those words."""
    while True:
        pos = _run_end(_LEAD_PUNCT_RUN, text, pos)
        yield pos
        word = _LEAD_WORD.match(text, pos)
        if not word:
            return
        pos = word.end()


def _label_lines(text: str, options: _Options | None, after: int) -> Extraction | None:
    """The choice of lines that hold nothing but a label, after position `after`."""
    found = set()
    for line in _LABEL_LINE.finditer(text):
        if line.start("label") > after:
            label = line.group("label")
            if options and options.number_elsewhere(label, _LABEL_VALUE[label]):
                return _AMBIGUOUS
            found.add(_LABEL_VALUE[label])
    if not found:
        return None
    return Extraction(found.pop(), "label_line") if len(found) == 1 else _AMBIGUOUS


def _first_line(text: str, options: _Options | None) -> Extraction | None:
    match = _LINE_OPENING.match(text, _run_end(_SPACE, text, 0))
    if not match:
        return None
    found = _read_label(text, match, options)
    return Extraction(found.choice, "first_line") if found and found.choice else found


def _option_lines(text: str, options: _Options) -> Extraction | None:
    """The option that lines of the output repeat, when they repeat exactly one."""
    found = set()
    for line in text.split("\n"):
        labelled = _LINE_OPENING.match(line)
        content = line[labelled.end() :] if labelled else line
        value = options.repeated_in(content) if content.strip() else None  # a blank line repeats no option
        if value is None:
            continue
        if labelled and _LABEL_VALUE[labelled.group("label")] != value:
            return _AMBIGUOUS
        found.add(value)
    return Extraction(found.pop(), "option_text") if len(found) == 1 else None


def extract(text: str | None, options: list[str] | None = None) -> Extraction:
    """Which option `text` states (see the module's docstring), and by which rule.
    `options` (the four option texts) lets quoted option text count and be checked."""
    if not text or not text.strip():
        return _NONE
    text = normalize(text).lower()  # length-preserving once İ is I: options match by position
    prepared = _Options.of(options)
    stated = _last_statement(text, prepared)
    if stated and stated[0].rule == "ambiguous":
        return stated[0]
    lines = _label_lines(text, prepared, after=stated[1] if stated else -1)
    if lines is not None:
        if stated and lines.choice == stated[0].choice:
            return stated[0]
        return lines
    if stated:
        return stated[0]
    first = _first_line(text, prepared)
    if first is not None:
        return first
    if prepared:
        return _option_lines(text, prepared) or _NONE
    return _NONE


def extract_choice(text: str | None, options: list[str] | None = None) -> int | None:
    """The chosen option (1-4), or None when the text states no single choice."""
    return extract(text, options).choice
