"""The words of a line of Markdown, as a reader sees them once it is rendered.

A README's first heading is often its name followed by badges
(`# Tool [![Build](https://ci/badge.svg)](https://ci)`): a title or a section name should
read "Tool", not the markup. markdown-it-py (CommonMark) parses the line's inline
syntax; link text and code are kept, images, HTML tags and emphasis marks dropped.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from servers.retrieval.errors import missing_extra

__all__ = ["inline_words"]


@cache
def _parser() -> Any:
    try:
        from markdown_it import MarkdownIt
    except ImportError:
        raise missing_extra("markdown_it") from None
    return MarkdownIt("commonmark")


def inline_words(line: str, *, fallback: bool = True) -> str:
    """The rendered words of `line`. With `fallback`, the images' alt text when there are
    no others (a heading that is only a logo), and `line` itself when it renders to
    nothing; without, "" then (a line of badges is no title)."""
    words: list[str] = []
    alts: list[str] = []
    for token in _parser().parseInline(line):
        for child in token.children or ():
            if child.type in ("text", "code_inline"):
                words.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                words.append(" ")
            elif child.type == "image":
                alts.append(child.content)
    candidates = ("".join(words), " ".join(alts), line) if fallback else ("".join(words),)
    for candidate in candidates:
        if any(ch.isalnum() for ch in candidate):
            return " ".join(candidate.split())
    return " ".join(line.split()) if fallback else ""
