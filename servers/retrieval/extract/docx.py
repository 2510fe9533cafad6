"""DOCX: paragraphs in order (python-docx), `Heading N` and `Title` styles as headings, then tables."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from servers.retrieval.errors import ExtractionError, missing_extra
from servers.retrieval.extract.base import Extracted, TextBuilder

__all__ = ["extract_docx"]

_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)


def extract_docx(data: bytes) -> Extracted:
    try:
        import docx
    except ImportError:
        raise missing_extra("docx") from None
    try:
        document: Any = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ExtractionError(f"corrupt DOCX: {exc}") from None
    except Exception as exc:  # python-docx raises its own PackageNotFoundError for non-DOCX zips
        raise ExtractionError(f"not readable as DOCX ({type(exc).__name__}: {exc})") from None
    builder = TextBuilder()
    title = str(document.core_properties.title or "")
    for paragraph in document.paragraphs:
        style = str(paragraph.style.name) if paragraph.style is not None else ""
        level = _heading_level(style)
        if level:
            builder.add(paragraph.text, "heading", level)
            if not title and level == 1:
                title = paragraph.text.strip()
        else:
            builder.add(paragraph.text)
    for table in document.tables:
        for row in table.rows:
            builder.add(" | ".join(cell.text.strip() for cell in row.cells))
    text = builder.text()
    if not text.strip():
        raise ExtractionError("the DOCX holds no text")
    if not title:
        first = builder.blocks[0]
        title = text[first.start : first.end][:200]
    return Extracted(text=text, type="docx", title=title, blocks=builder.blocks)


def _heading_level(style: str) -> int:
    if style.lower() == "title":
        return 1
    match = _HEADING_STYLE.match(style.strip())
    return int(match.group(1)) if match else 0
