"""Structure-aware chunking measured in the embedding model's tokens.

A chunk never crosses a heading or a page break: each heading opens a new chunk and names the section
(`context`) of the chunks under it. Within a section, whole sentences are packed up to
`target` tokens; the next chunk repeats the last sentences of the previous one up to
`overlap` tokens. A sentence longer than `target` is cut at token boundaries. Every
chunk keeps its exact character offsets into the extracted text and its page.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

from servers.retrieval.extract.base import Extracted, heading_name

__all__ = ["Chunk", "chunk_document"]

# A sentence ends at . ! or ? (optionally closed by quotes or brackets) followed by space.
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+")

TokenSpans = Callable[[str], list[tuple[int, int]]]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A passage of a document: `text[start:end]`, its page and the headings above it."""

    ord: int
    start: int
    end: int
    page: int | None
    context: str
    tokens: int


@dataclass(slots=True)
class _Unit:
    start: int
    end: int
    tokens: int
    heading: bool = False


class _Counter:
    """Token counts of character ranges, from one tokenisation of the whole text."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        self.starts = [s for s, _ in spans]
        self.ends = [e for _, e in spans]

    def count(self, start: int, end: int) -> int:
        return bisect.bisect_left(self.starts, end) - bisect.bisect_left(self.starts, start)

    def cut(self, start: int, end: int, size: int) -> list[tuple[int, int]]:
        """Split [start, end) into pieces of at most `size` tokens at token boundaries."""
        first = bisect.bisect_left(self.starts, start)
        last = bisect.bisect_left(self.starts, end)
        pieces: list[tuple[int, int]] = []
        pos = start
        for i in range(first + size, last, size):
            cut_at = self.starts[i]
            pieces.append((pos, cut_at))
            pos = cut_at
        pieces.append((pos, end))
        return [(a, _rstrip(self, a, b)) for a, b in pieces]


def _rstrip(counter: _Counter, start: int, end: int) -> int:
    # Pieces end where the next token starts; pull the end back to the last token's end.
    i = bisect.bisect_left(counter.starts, end) - 1
    return max(start, min(end, counter.ends[i])) if i >= 0 else end


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = start
    for match in _SENTENCE_END.finditer(text, start, end):
        stop = match.end()
        trimmed = stop
        while trimmed > pos and text[trimmed - 1].isspace():
            trimmed -= 1
        if trimmed > pos:
            spans.append((pos, trimmed))
        pos = stop
    if pos < end:
        spans.append((pos, end))
    return spans


def _units(doc: Extracted, counter: _Counter, target: int) -> list[_Unit]:
    units: list[_Unit] = []
    for block in doc.blocks:
        if block.kind == "heading":
            units.append(_Unit(block.start, block.end, counter.count(block.start, block.end), heading=True))
            continue
        for a, b in _sentences(doc.text, block.start, block.end):
            tokens = counter.count(a, b)
            if tokens <= target:
                units.append(_Unit(a, b, tokens))
            else:
                units.extend(_Unit(x, y, counter.count(x, y)) for x, y in counter.cut(a, b, target))
    return units


def chunk_document(doc: Extracted, token_spans: TokenSpans, *, target: int, overlap: int) -> list[Chunk]:
    """Chunks of `doc`, each at most about `target` tokens, overlapping by up to `overlap`."""
    counter = _Counter(token_spans(doc.text))
    headings: list[tuple[int, str]] = []
    chunks: list[Chunk] = []
    current: list[_Unit] = []
    context = ""
    levels = {b.start: b.level for b in doc.blocks if b.kind == "heading"}

    def flush() -> None:
        if not current or all(u.heading for u in current):
            return
        start, end = current[0].start, current[-1].end
        tokens = counter.count(start, end)
        chunks.append(Chunk(len(chunks), start, end, doc.page_at(start), context, tokens))

    for unit in _units(doc, counter, target):
        if unit.heading:
            flush()
            current = [unit]
            level = levels.get(unit.start, 1)
            headings = [(lvl, name) for lvl, name in headings if lvl < level]
            headings.append((level, heading_name(doc.text[unit.start : unit.end], markdown=doc.markdown)))
            context = " > ".join(name for _, name in headings)
            continue
        size = sum(u.tokens for u in current)
        if current and doc.page_at(unit.start) != doc.page_at(current[0].start):
            # A chunk never spans two pages: its citation names one page.
            flush()
            current = [u for u in current if u.heading] if all(u.heading for u in current) else []
        elif current and size + unit.tokens > target and not all(u.heading for u in current):
            flush()
            current = _overlap_tail(current, overlap)
        current.append(unit)
    flush()
    return chunks


def _overlap_tail(units: list[_Unit], overlap: int) -> list[_Unit]:
    tail: list[_Unit] = []
    total = 0
    for unit in reversed(units):
        if unit.heading or total + unit.tokens > overlap:
            break
        tail.insert(0, unit)
        total += unit.tokens
    # Never repeat the whole previous chunk: that would make no progress.
    return tail if len(tail) < len(units) else []
