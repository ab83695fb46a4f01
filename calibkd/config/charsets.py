"""The characters of the glyph dataset, one class each (kept free of heavy
imports so ``calibkd.config`` can name the classes)."""

from __future__ import annotations

LATIN = tuple([chr(c) for c in range(ord("A"), ord("Z") + 1)] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
              + [str(d) for d in range(10)])
#: 24 capitals (U+0391-U+03A9 without the unassigned U+03A2) and 25 small letters with final sigma
GREEK = tuple([chr(c) for c in range(0x391, 0x3AA) if c != 0x3A2] + [chr(c) for c in range(0x3B1, 0x3CA)])
#: Russian: 33 capitals (Ё after Е), 33 small letters (ё after е); then Ѕ ѕ І і Ј ј
CYRILLIC = tuple([chr(0x410 + i) for i in range(6)] + [chr(0x401)] + [chr(c) for c in range(0x416, 0x430)]
                 + [chr(0x430 + i) for i in range(6)] + [chr(0x451)] + [chr(c) for c in range(0x436, 0x450)]
                 + [chr(c) for c in (0x405, 0x455, 0x406, 0x456, 0x408, 0x458)])

#: The 183 classes in label order: Latin A-Z a-z 0-9, Greek, Cyrillic.
GLYPH_CLASSES: tuple[str, ...] = LATIN + GREEK + CYRILLIC
SCRIPT_OF = {**{c: "lat" for c in LATIN}, **{c: "gr" for c in GREEK}, **{c: "cy" for c in CYRILLIC}}
#: Names that tell same-looking classes apart: ``A_lat``, ``Α_gr``, ``А_cy``.
GLYPH_CLASS_NAMES: tuple[str, ...] = tuple(f"{c}_{SCRIPT_OF[c]}" for c in GLYPH_CLASSES)


def class_name(char: str) -> str:
    """``A_lat``-style name of a character (the character itself outside the three scripts)."""
    return f"{char}_{SCRIPT_OF[char]}" if char in SCRIPT_OF else char
