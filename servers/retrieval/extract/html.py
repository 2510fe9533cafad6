"""HTML: the main content (`<main>`, `<article>`, else `<body>`), without navigation,
headers, footers, scripts or forms; block elements become paragraphs, `<h1>`-`<h6>` headings,
`<pre>` keeps its lines, and each table row is one line of its cells (`Basic | 10 | EUR`), as
DOCX rows are read."""

from __future__ import annotations

import re
from typing import Any

from servers.retrieval.errors import ExtractionError, missing_extra
from servers.retrieval.extract.base import Extracted, TextBuilder

__all__ = ["extract_html"]

_DROP = {
    "script",
    "style",
    "noscript",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "template",
    "svg",
    "iframe",
    "button",
    "select",
    "menu",
    "dialog",
}
_DROP_ROLES = {"navigation", "banner", "contentinfo", "search", "menu", "complementary"}
_BLOCKS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "li",
    "ul",
    "ol",
    "pre",
    "blockquote",
    "table",
    "tr",
    "td",
    "th",
    "dt",
    "dd",
    "dl",
    "figure",
    "figcaption",
    "br",
    "hr",
    "address",
    "details",
    "summary",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# A page that names its encoding (`<meta charset>`, `http-equiv`, an XML declaration) is read
# as it says; browsers look for the declaration in the first 1,024 bytes. libxml2 reads the
# `<meta>` forms itself, not the XML declaration.
_META_CHARSET = re.compile(rb"<meta[^>]+charset", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9._-]+)""")
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def extract_html(data: bytes) -> Extracted:
    try:
        import lxml.html
    except ImportError:
        raise missing_extra("lxml") from None
    try:
        root: Any = lxml.html.document_fromstring(data, parser=_parser_for(data, lxml.html))
    except Exception as exc:  # lxml raises ParserError or ValueError on garbage
        raise ExtractionError(f"not readable as HTML ({exc})") from None
    title_el = root.find(".//title")
    title = " ".join((title_el.text_content() if title_el is not None else "").split())
    for element in list(root.iter()):
        if _dropped(element):
            element.drop_tree()
    body = _main(root)
    builder = TextBuilder()
    pieces: list[str] = []
    _walk(body, pieces, builder)
    _flush(pieces, builder)
    if not title:
        first = next((b for b in builder.blocks if b.kind == "heading"), None)
        title = builder.text()[first.start : first.end] if first else ""
    return Extracted(text=builder.text(), type="html", title=title, blocks=builder.blocks)


def _parser_for(data: bytes, html: Any) -> Any:
    """A page that declares no encoding is UTF-8 when it decodes as UTF-8 (libxml2 would read
    it as Latin-1: "Café" as "CafÃ©"), else windows-1252, the web's legacy default."""
    if data.startswith(_BOMS) or _META_CHARSET.search(data, 0, 1024):
        return None
    declared = _XML_ENCODING.match(data)
    if declared:
        try:
            return html.HTMLParser(encoding=declared.group(1).decode())
        except LookupError:
            pass  # an encoding libxml2 does not know: judge the bytes as if none were named
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return html.HTMLParser(encoding="windows-1252")
    return html.HTMLParser(encoding="utf-8")


def _dropped(element: Any) -> bool:
    tag = element.tag if isinstance(element.tag, str) else ""
    if tag.lower() in _DROP:
        return True
    if not isinstance(element.tag, str):
        return True  # comments and processing instructions
    role = (element.get("role") or "").lower()
    return role in _DROP_ROLES or (element.get("aria-hidden") or "").lower() == "true"


def _main(root: Any) -> Any:
    for path in (".//main", ".//*[@role='main']", ".//article"):
        found = root.find(path)
        if found is not None:
            return found
    body = root.find(".//body")
    return body if body is not None else root


def _tag(element: Any) -> str:
    return element.tag.lower() if isinstance(element.tag, str) else ""


def _words(element: Any) -> str:
    """An element's text with its whitespace collapsed; a `<br>` inside parts words."""
    for br in element.iter("br"):
        br.tail = " " + (br.tail or "")
    return " ".join(element.text_content().split())


def _preformatted(element: Any) -> str:
    """A `<pre>` block (code, a shell session) as written: its lines and their indentation
    kept, where other elements have their whitespace collapsed."""
    lines = [line.rstrip() for line in element.text_content().splitlines()]
    return "\n".join(lines).strip("\n")


def _walk(element: Any, pieces: list[str], builder: TextBuilder) -> None:
    tag = _tag(element)
    if tag in _BLOCKS:
        _flush(pieces, builder)
    if tag in _HEADINGS:
        builder.add(_words(element), "heading", _HEADINGS[tag])
    elif tag == "pre":
        builder.add(_preformatted(element))
    elif tag == "tr":
        cells = [_words(cell) for cell in element if _tag(cell) in ("td", "th")]
        if any(cells):
            builder.add(" | ".join(cells))
    else:
        if element.text:
            pieces.append(element.text)
        for child in element:
            _walk(child, pieces, builder)
            if child.tail:
                pieces.append(child.tail)
    if tag in _BLOCKS:
        _flush(pieces, builder)


def _flush(pieces: list[str], builder: TextBuilder) -> None:
    if pieces:
        builder.add(" ".join("".join(pieces).split()))
        pieces.clear()
