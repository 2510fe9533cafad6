"""What every extractor returns: the text, its structure and its pages.

Offsets everywhere (blocks, pages, later chunks) are character offsets into
`Extracted.text`, the text a citation points into.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from servers.retrieval.extract.markdown_inline import inline_words

__all__ = ["Block", "Extracted", "TextBuilder", "first_line", "heading_name"]

BlockKind = Literal["heading", "paragraph"]


@dataclass(frozen=True, slots=True)
class Block:
    """A structural unit of the text: a heading (with its level) or a paragraph."""

    start: int
    end: int
    kind: BlockKind = "paragraph"
    level: int = 0


@dataclass
class Extracted:
    """The extracted text of one document, with its blocks and page starts."""

    text: str
    type: str
    title: str = ""
    blocks: list[Block] = field(default_factory=list[Block])
    # Offset at which page i+1 begins; None for formats without pages.
    page_starts: list[int] | None = None
    # Headings hold Markdown inline syntax (links, images, emphasis) to read past.
    markdown: bool = False

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding `offset`, or None without pages."""
        if not self.page_starts:
            return None
        return max(1, bisect.bisect_right(self.page_starts, offset))


_ATX_OPEN = re.compile(r"^[ \t]*#{1,6}(?=[ \t]|$)")
_ATX_CLOSE = re.compile(r"[ \t]+#+[ \t]*$")


def heading_name(raw: str, *, markdown: bool = False) -> str:
    """A heading's words: a Markdown heading's `#` marks (opening and closing) dropped, the
    lines of a multi-line (setext) heading joined, and in Markdown its inline syntax read
    as rendered (`[![CI](badge.svg)](ci)` is no word of a heading)."""
    if _ATX_OPEN.match(raw):
        raw = _ATX_CLOSE.sub("", _ATX_OPEN.sub("", raw, count=1))
    words = " ".join(raw.split())
    return inline_words(words) if markdown else words


def first_line(text: str, blocks: Sequence[Block], *, markdown: bool = False) -> str:
    """The first line of the text with a letter or digit in it, as a title of last resort:
    a rule of `=` or `-` above a plain-text title is not one, nor in Markdown a line of
    badges."""
    for block in blocks:
        for line in text[block.start : block.end].splitlines():
            if not any(ch.isalnum() for ch in line):
                continue
            words = inline_words(line, fallback=False) if markdown else line
            if any(ch.isalnum() for ch in words):
                return " ".join(words.split())[:200]
    return ""


class TextBuilder:
    """Assemble extracted blocks into one text, remembering where each block lies."""

    SEPARATOR = "\n\n"

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self.blocks: list[Block] = []

    @property
    def length(self) -> int:
        return self._length

    def add(self, text: str, kind: BlockKind = "paragraph", level: int = 0) -> None:
        text = text.strip()
        if not text:
            return
        if self._parts and not self._parts[-1].endswith(self.SEPARATOR):
            self._append(self.SEPARATOR)
        start = self._length
        self._append(text)
        self.blocks.append(Block(start, self._length, kind, level))

    def separate(self) -> None:
        """End the current page: the next block starts after a separator."""
        if self._parts and not self._parts[-1].endswith(self.SEPARATOR):
            self._append(self.SEPARATOR)

    def text(self) -> str:
        return "".join(self._parts)

    def _append(self, piece: str) -> None:
        self._parts.append(piece)
        self._length += len(piece)
