"""The canonical form of a text: what two submissions must share to count as one.

A copy that differs only by case, punctuation, spacing, compatibility forms, invisible
characters or letters from another script that look the same (Cyrillic U+0430 for Latin `a`) is
the same demonstration and earns once. Pure and cached per character, so intake's hot path
pays a dictionary lookup per non-ASCII character.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from confusable_homoglyphs import confusables

_LATIN = ["latin"]


@lru_cache(maxsize=65_536)
def _skeleton_char(char: str) -> str:
    """The Latin letter a character is confusable with, '' for invisible ones, else itself."""
    category = unicodedata.category(char)
    if category == "Cf":  # zero-width spaces and joiners, bidi marks, soft hyphens
        return ""
    if category[0] in "PS":  # punctuation and symbols carry no demonstration
        return " "
    if char.isascii():
        return char
    found = confusables.is_confusable(char, greedy=True, preferred_aliases=_LATIN)
    for entry in found or ():
        for glyph in entry["homoglyphs"]:
            if glyph["c"].isascii() and glyph["c"].isalnum():
                return str(glyph["c"])
    return char


def canonical(text: str | None) -> str:
    """NFKC, invisible characters dropped, homoglyphs to Latin, case folded, punctuation and
    runs of whitespace to one space."""
    folded = unicodedata.normalize("NFKC", text or "")
    skeleton = "".join(_skeleton_char(char) for char in folded).casefold()
    return " ".join(skeleton.split())
