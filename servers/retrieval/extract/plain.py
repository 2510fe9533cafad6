"""Plain text and Markdown: the text is the file itself, structure from blank lines and headings.

Markdown is read the way CommonMark reads its block structure, as far as chunking needs it:
ATX (`# Title`) and setext (`Title` over `=====` or `-----`) headings, fenced code kept
whole (a `# comment` inside a fence is code, not a heading), and YAML front matter, whose
`title` names the document.
"""

from __future__ import annotations

import re
from typing import Any

from servers.retrieval.errors import missing_extra
from servers.retrieval.extract.base import Block, Extracted, first_line, heading_name

__all__ = ["extract_markdown", "extract_plain", "split_blocks"]

_ATX = re.compile(r" {0,3}(#{1,6})[ \t]+\S")
_SETEXT = re.compile(r" {0,3}(=+|-{2,})[ \t]*$")
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})")
_FENCE_CLOSE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*$")
# A paragraph that opens with a list item or a quote is not a setext heading's text: the
# dashes under it are a thematic break.
_LIST_OR_QUOTE = re.compile(r"[ \t]*(?:(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)|>)")
_FRONT_MATTER_OPEN = re.compile(r"---[ \t]*\r?\n")
_FRONT_MATTER_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*\r?$", re.MULTILINE)


def split_blocks(text: str, *, markdown: bool) -> list[Block]:
    """Paragraphs separated by blank lines; in Markdown, headings are blocks of their own
    (a setext heading's underline belongs to no block), fenced code is one block, and front
    matter is one block."""
    blocks: list[Block] = []
    paragraph: tuple[int, int] | None = None  # the open paragraph's span
    fence: tuple[str, int, int] | None = None  # an open code fence: its mark, length and start

    def close_paragraph() -> None:
        nonlocal paragraph
        if paragraph is not None:
            blocks.append(_trimmed(text, *paragraph))
            paragraph = None

    skip_to = 0
    if markdown:
        skip_to = _front_matter_end(text)
        if skip_to:
            blocks.append(_trimmed(text, 0, skip_to))
    for start, end in _lines(text):
        if start < skip_to:
            continue
        line = text[start:end]
        if fence is not None:
            closing = _FENCE_CLOSE.match(line)
            mark, length, fence_start = fence
            if closing is not None and closing.group(1)[0] == mark and len(closing.group(1)) >= length:
                blocks.append(_trimmed(text, fence_start, end))
                fence = None
            continue
        if not line.strip():
            close_paragraph()
            continue
        if markdown:
            opening = _FENCE_OPEN.match(line)
            # A backtick fence's info string holds no backtick (else it is inline code).
            if opening is not None and not (opening.group(1)[0] == "`" and "`" in line[opening.end() :]):
                close_paragraph()
                fence = (opening.group(1)[0], len(opening.group(1)), start)
                continue
            atx = _ATX.match(line)
            if atx is not None:
                close_paragraph()
                blocks.append(_trimmed(text, start, end, "heading", len(atx.group(1))))
                continue
            underline = _SETEXT.match(line)
            titled = paragraph if paragraph and not _LIST_OR_QUOTE.match(text, paragraph[0]) else None
            if underline is not None and titled is not None:
                level = 1 if underline.group(1)[0] == "=" else 2
                blocks.append(_trimmed(text, *titled, "heading", level))
                paragraph = None
                continue
        paragraph = (start, end) if paragraph is None else (paragraph[0], end)
    if fence is not None:
        blocks.append(_trimmed(text, fence[2], len(text)))  # a fence never closed runs to the end
    close_paragraph()
    return [b for b in blocks if b.end > b.start]


def _lines(text: str) -> list[tuple[int, int]]:
    """Each line's span without its line break (any of those `str.splitlines` knows)."""
    spans: list[tuple[int, int]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        body = line.splitlines()[0]
        spans.append((offset, offset + len(body)))
        offset += len(line)
    return spans


def _front_matter_end(text: str) -> int:
    """Where YAML front matter (`---` on the first line, closed by `---` or `...`) ends, or 0."""
    opening = _FRONT_MATTER_OPEN.match(text)
    if opening is None:
        return 0
    closing = _FRONT_MATTER_CLOSE.search(text, opening.end())
    return closing.end() if closing is not None else 0


def _front_matter_title(text: str, end: int) -> str:
    try:
        import yaml
    except ImportError:
        raise missing_extra("yaml") from None
    body = _FRONT_MATTER_OPEN.sub("", text[:end], count=1)
    body = _FRONT_MATTER_CLOSE.sub("", body)
    try:
        data: Any = yaml.safe_load(body)
    except yaml.YAMLError:
        return ""  # not YAML after all: the document is still indexed, titled otherwise
    title = data.get("title") if isinstance(data, dict) else None
    return " ".join(str(title).split())[:200] if isinstance(title, (str, int, float)) else ""


def _trimmed(text: str, start: int, end: int, kind: str = "paragraph", level: int = 0) -> Block:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Block(start, end, "heading" if kind == "heading" else "paragraph", level)


def extract_plain(text: str) -> Extracted:
    blocks = split_blocks(text, markdown=False)
    return Extracted(text=text, type="text", title=first_line(text, blocks), blocks=blocks)


def extract_markdown(text: str, *, type_name: str = "markdown") -> Extracted:
    blocks = split_blocks(text, markdown=True)
    front_matter = _front_matter_end(text)
    title = _front_matter_title(text, front_matter) if front_matter else ""
    if not title:
        title = next(
            (heading_name(text[b.start : b.end], markdown=True) for b in blocks if b.kind == "heading"),
            "",
        )[:200]
    if not title:
        title = first_line(text, [b for b in blocks if b.start >= front_matter], markdown=True)
    return Extracted(text=text, type=type_name, title=title, blocks=blocks, markdown=True)
