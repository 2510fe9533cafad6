"""PDF: the text of each page (pypdf), pages kept apart so every chunk knows its page."""

from __future__ import annotations

import io
import logging
from typing import Any

from servers.retrieval.errors import ExtractionError, missing_extra
from servers.retrieval.extract.base import Extracted, TextBuilder, first_line
from servers.retrieval.extract.plain import split_blocks

__all__ = ["extract_pdf"]

logger = logging.getLogger(__name__)


def extract_pdf(data: bytes) -> Extracted:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError:
        raise missing_extra("pypdf") from None
    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise ExtractionError("not a PDF file: it does not start with %PDF (corrupt or mislabelled)")
    try:
        reader: Any = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError("the PDF is encrypted with a password; decrypt it first")
        page_texts = [page.extract_text() or "" for page in reader.pages]
        meta = reader.metadata
        title = str(meta.title) if meta is not None and meta.title else ""
    except ExtractionError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise ExtractionError(f"corrupt PDF: {exc}") from None
    builder = TextBuilder()
    page_starts: list[int] = []
    for page_text in page_texts:
        builder.separate()
        page_starts.append(builder.length)
        for block in split_blocks(page_text, markdown=False):
            builder.add(page_text[block.start : block.end])
    text = builder.text()
    if not text.strip():
        raise ExtractionError(
            f"the PDF has {len(page_texts)} page(s) but no extractable text (a scanned image?); "
            "run OCR on it first"
        )
    if not title:
        title = first_line(text, builder.blocks)
    return Extracted(text=text, type="pdf", title=title, blocks=builder.blocks, page_starts=page_starts)
