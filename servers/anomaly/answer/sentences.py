"""Splitting an answer into sentences, keeping their citation markers.

A sentence ends at . ! or ? followed by whitespace and an upper-case letter, digit,
quote or bracket - but not after common abbreviations (e.g., Dr., U.S.), single
initials, or inside numbers (3.14). Line breaks between list items end sentences too.
Citation markers like [1], [doc-2] or [a, b] after the full stop stay with the
sentence they close.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Sentence", "split_sentences"]

_ABBREVIATIONS = {
    "e.g", "i.e", "etc", "vs", "dr", "mr", "mrs", "ms", "prof", "inc", "ltd", "co", "corp", "jr", "sr",
    "st", "no", "fig", "approx", "u.s", "u.k", "e.u", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
    "sep", "sept", "oct", "nov", "dec", "p", "pp", "vol", "al",
}  # fmt: skip
_BOUNDARY = re.compile(r"(?<=[.!?])((?:\s*\[[^\]\n]{1,40}\])*)\s+(?=[\"'(\[A-Z0-9])")
_LINES = re.compile(r"\n\s*\n|\n(?=\s*(?:[-*\u2022]|\d+[.)])\s)")
_LAST_WORD = re.compile(r"([A-Za-z][A-Za-z.]*)\.$")


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int
    end: int


def _is_abbreviation(chunk: str) -> bool:
    match = _LAST_WORD.search(chunk)
    if match is None:
        return False
    word = match.group(1).lower()
    return word in _ABBREVIATIONS or len(word) == 1


def split_sentences(text: str) -> list[Sentence]:
    sentences: list[Sentence] = []
    for block_start, block in _blocks(text):
        start = 0
        for match in _BOUNDARY.finditer(block):
            end = match.end(1)
            if _is_abbreviation(block[start : match.start()].rstrip("]").strip()):
                continue
            _add(sentences, block, block_start, start, end)
            start = match.end()
        _add(sentences, block, block_start, start, len(block))
    return sentences


def _blocks(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    start = 0
    for match in _LINES.finditer(text):
        out.append((start, text[start : match.start()]))
        start = match.end()
    out.append((start, text[start:]))
    return out


def _add(sentences: list[Sentence], block: str, offset: int, start: int, end: int) -> None:
    piece = block[start:end]
    stripped = piece.strip()
    if not stripped:
        return
    lead = len(piece) - len(piece.lstrip())
    first = offset + start + lead
    sentences.append(Sentence(stripped, first, first + len(stripped)))
