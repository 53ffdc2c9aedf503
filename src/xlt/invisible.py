"""Characters that carry no text: the extractor drops them from model output and data
preparation refuses fields made only of them. Its own module so that data preparation
does not depend on the extractor's code (an extractor edit reruns scoring only)."""

# Invisible: every format character (Unicode category Cf: zero-width and direction
# marks, word joiner, soft hyphen, Mongolian vowel separator, tags; tests/faults/test_hostile_outputs.py
# checks this list against unicodedata), and the combining marks that show nothing: the
# combining grapheme joiner U+034F and the variation selectors (U+FE00-FE0F after an
# emoji or CJK character, U+E0100-E01EF, Mongolian U+180B-180D and U+180F).
_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
    (0xE0100, 0xE01EF),
)
INVISIBLE = tuple(chr(c) for first, last in _INVISIBLE_RANGES for c in range(first, last + 1)) + ("\u034f",)
