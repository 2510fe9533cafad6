"""Plain text and Markdown: the text is the file itself, structure from blank lines and `#` headings."""

from __future__ import annotations

import re

from servers.retrieval.extract.base import Block, Extracted

__all__ = ["extract_markdown", "extract_plain", "split_blocks"]

_HEADING = re.compile(r"^(#{1,6})[ \t]+\S", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~)")
_BLANK = re.compile(r"\n[ \t]*\n")


def split_blocks(text: str, *, markdown: bool) -> list[Block]:
    """Paragraphs separated by blank lines; in Markdown, heading lines are blocks of their own
    and fenced code stays in one block."""
    blocks: list[Block] = []
    pos = 0
    for para_start, para_end in _paragraphs(text, markdown=markdown):
        pos = para_start
        if markdown:
            for line_start, line_end in _lines(text, para_start, para_end):
                match = _HEADING.match(text, line_start, line_end)
                if match is None:
                    continue
                if pos < line_start:
                    blocks.append(_trimmed(text, pos, line_start))
                blocks.append(_trimmed(text, line_start, line_end, "heading", len(match.group(1))))
                pos = line_end
        if pos < para_end:
            blocks.append(_trimmed(text, pos, para_end))
    return [b for b in blocks if b.end > b.start]


def _paragraphs(text: str, *, markdown: bool) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = 0
    in_fence = False
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if markdown and _FENCE.match(stripped):
            in_fence = not in_fence
        if not stripped and not in_fence:
            if offset > start:
                spans.append((start, offset))
            start = offset + len(line)
        offset += len(line)
    if offset > start:
        spans.append((start, offset))
    return spans


def _lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = start
    while pos < end:
        nl = text.find("\n", pos, end)
        stop = end if nl < 0 else nl
        spans.append((pos, stop))
        pos = stop + 1
    return spans


def _trimmed(text: str, start: int, end: int, kind: str = "paragraph", level: int = 0) -> Block:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Block(start, end, "heading" if kind == "heading" else "paragraph", level)


def extract_plain(text: str) -> Extracted:
    blocks = split_blocks(text, markdown=False)
    title = text[blocks[0].start : blocks[0].end].splitlines()[0][:200] if blocks else ""
    return Extracted(text=text, type="text", title=title, blocks=blocks)


def extract_markdown(text: str, *, type_name: str = "markdown") -> Extracted:
    blocks = split_blocks(text, markdown=True)
    title = ""
    for block in blocks:
        if block.kind == "heading":
            title = text[block.start : block.end].lstrip("#").strip()
            break
    if not title and blocks:
        title = text[blocks[0].start : blocks[0].end].splitlines()[0][:200]
    return Extracted(text=text, type=type_name, title=title, blocks=blocks)
