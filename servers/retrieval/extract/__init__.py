"""Text extraction for every supported format, by file extension.

`extract_bytes(data, kind)` returns an `Extracted` or raises `ExtractionError` saying
why the content cannot be read (empty, binary, corrupt). Heavy parsers (lxml, pypdf,
python-docx) are imported only when a file of their type arrives.
"""

from __future__ import annotations

from pathlib import Path

from servers.retrieval.errors import ExtractionError
from servers.retrieval.extract.base import Block, Extracted
from servers.retrieval.extract.plain import extract_markdown, extract_plain

__all__ = ["SUPPORTED_SUFFIXES", "Block", "Extracted", "extract_bytes", "extract_inline", "kind_of"]

SUPPORTED_SUFFIXES: dict[str, str] = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}


def kind_of(path: Path) -> str | None:
    """The format of `path` by its extension, or None when unsupported."""
    return SUPPORTED_SUFFIXES.get(path.suffix.lower())


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:8192]:
        raise ExtractionError("binary content in a text file (NUL bytes); is the extension right?")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Legacy single-byte text: every byte decodes, so offsets stay meaningful.
        return data.decode("cp1252", errors="replace")


def extract_bytes(data: bytes, kind: str) -> Extracted:
    """Extract the text of a file's `data` read as `kind`."""
    if not data.strip():
        raise ExtractionError("the file is empty: there is nothing to index")
    if kind == "pdf":
        from servers.retrieval.extract.pdf import extract_pdf

        return extract_pdf(data)
    if kind == "docx":
        from servers.retrieval.extract.docx import extract_docx

        return extract_docx(data)
    if kind == "html":
        from servers.retrieval.extract.html import extract_html

        result = extract_html(data)
    elif kind == "markdown":
        result = extract_markdown(_decode(data))
    elif kind == "text":
        result = extract_plain(_decode(data))
    else:
        raise ExtractionError(f"unsupported type {kind!r}")
    if not result.text.strip():
        raise ExtractionError("no text left after extraction (only markup or whitespace)")
    return result


def extract_inline(text: str, title: str) -> Extracted:
    """An inline document: plain text or Markdown, as given."""
    if not text.strip():
        raise ExtractionError("the document's text is empty")
    result = extract_markdown(text, type_name="inline")
    if title:
        result.title = title
    return result
