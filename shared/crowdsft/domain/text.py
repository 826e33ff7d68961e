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


def _folded(text: str) -> str:
    """NFKC and case folding until stable: folding can undo NFKC (U+0345 folds to Greek iota)."""
    for _ in range(4):
        again = unicodedata.normalize("NFKC", text.casefold())
        if again == text:
            break
        text = again
    return text


def _skeleton(text: str) -> str:
    return "".join(_skeleton_char(char) for char in text)


def _once(text: str) -> str:
    # Look-alikes are mapped before folding (Cyrillic capital Te is a Latin T, its small form
    # is not a Latin t) and again after it (folding makes new ones: U+0345 folds to iota).
    return " ".join(_skeleton(_folded(_skeleton(_folded_nfkc(text)))).casefold().split())


def _folded_nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


# ASCII text needs none of the Unicode steps (NFKC leaves it alone, case folding is lower(),
# nothing in it is invisible or a look-alike): punctuation and symbols to spaces is all, in
# one C-level pass. Most demonstrations are ASCII; this is 10x faster than the general path.
_ASCII_PUNCTUATION = str.maketrans(
    {chr(c): " " for c in range(128) if unicodedata.category(chr(c))[0] in "PS"}
)


def canonical(text: str | None) -> str:
    """NFKC and case folded, invisible characters dropped, homoglyphs to Latin, punctuation
    and runs of whitespace to one space. Idempotent: a canonical text is its own canonical."""
    text = text or ""
    if text.isascii():
        return " ".join(text.translate(_ASCII_PUNCTUATION).lower().split())
    return unicode_canonical(text)


def unicode_canonical(text: str) -> str:
    """The general path, for any text (`canonical` takes it for all but ASCII)."""
    current = _once(text)
    for _ in range(3):
        again = _once(current)
        if again == current:
            break
        current = again
    return current
