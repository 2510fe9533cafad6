"""DOCX: the body in document order (python-docx): paragraphs, `Heading N` and `Title`
styles as headings, and each table row as one line of its cells, where it stands, so a
table stays under the heading it belongs to. A merged cell is read once.
"""

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
        from docx.table import Table
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
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            for row in item.rows:
                cells = _row_cells(row)
                if any(cells):
                    builder.add(" | ".join(cells))
            continue
        style = str(item.style.name) if item.style is not None else ""
        level = _heading_level(style)
        if level:
            builder.add(item.text, "heading", level)
            if not title and level == 1:
                title = item.text.strip()
        else:
            builder.add(item.text)
    text = builder.text()
    if not text.strip():
        raise ExtractionError("the DOCX holds no text")
    if not title:
        first = builder.blocks[0]
        title = text[first.start : first.end][:200]
    return Extracted(text=text, type="docx", title=title, blocks=builder.blocks)


def _row_cells(row: Any) -> list[str]:
    """The texts of a row's cells, a cell merged across columns once."""
    texts: list[str] = []
    previous = None
    for cell in row.cells:
        if cell._tc is not previous:  # a merged cell comes back once per column it spans
            texts.append(cell.text.strip())
        previous = cell._tc
    return texts


def _heading_level(style: str) -> int:
    if style.lower() == "title":
        return 1
    match = _HEADING_STYLE.match(style.strip())
    return int(match.group(1)) if match else 0
