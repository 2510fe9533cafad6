"""Extraction of every format: text, blocks, pages and titles, with offsets into the text."""

from __future__ import annotations

import io

import pytest

from servers.retrieval.errors import ExtractionError
from servers.retrieval.extract import SUPPORTED_SUFFIXES, extract_bytes, extract_inline
from servers.retrieval.filters import DOCUMENT_TYPES
from tests.servers.retrieval.fixtures import make_docx, make_pdf


def _blocks(doc: object) -> list[tuple[str, str]]:
    text = doc.text  # type: ignore[attr-defined]
    return [(b.kind, text[b.start : b.end]) for b in doc.blocks]  # type: ignore[attr-defined]


def test_markdown_keeps_the_source_text_with_headings_and_fenced_code_as_blocks() -> None:
    source = (
        "# Title\n\nFirst para\nstill first.\n\n```\ncode\n\nmore code\n```\n\n## Next\nText under next.\n"
    )
    doc = extract_bytes(source.encode(), "markdown")
    assert doc.text == source and doc.title == "Title"
    assert _blocks(doc) == [
        ("heading", "# Title"),
        ("paragraph", "First para\nstill first."),
        ("paragraph", "```\ncode\n\nmore code\n```"),
        ("heading", "## Next"),
        ("paragraph", "Text under next."),
    ]


def test_a_comment_in_fenced_code_is_code_not_a_heading() -> None:
    source = (
        "Install it:\n```bash\n# fetch the wheel\npip install x\n\n# run it\nx --help\n```\n"
        "~~~~\n# still code\n~~~\n~~~~\n\n````\n```\n# inner fence, still code\n```\n````\n"
    )
    doc = extract_bytes(source.encode(), "markdown")
    assert doc.title == "Install it:"
    assert _blocks(doc) == [
        ("paragraph", "Install it:"),
        ("paragraph", "```bash\n# fetch the wheel\npip install x\n\n# run it\nx --help\n```"),
        ("paragraph", "~~~~\n# still code\n~~~\n~~~~"),
        ("paragraph", "````\n```\n# inner fence, still code\n```\n````"),
    ]
    unclosed = extract_bytes(b"# Notes\n\n```\n# never closed\ncode", "markdown")
    assert _blocks(unclosed) == [("heading", "# Notes"), ("paragraph", "```\n# never closed\ncode")]


def test_setext_headings_are_headings_and_their_underlines_belong_to_no_block() -> None:
    source = (
        "Release Guide\n=============\n\nIntro.\n\nBuilding it\n-----------\nSteps.\n\n"
        "- a list item\n---\n\nA table | here\n--- | ---\n\n## Closed ATX ##\n"
    )
    doc = extract_bytes(source.encode(), "markdown")
    assert doc.title == "Release Guide"
    assert [(b.kind, b.level, doc.text[b.start : b.end]) for b in doc.blocks] == [
        ("heading", 1, "Release Guide"),
        ("paragraph", 0, "Intro."),
        ("heading", 2, "Building it"),
        ("paragraph", 0, "Steps."),
        ("paragraph", 0, "- a list item\n---"),  # a list item over dashes: a rule, not a heading
        ("paragraph", 0, "A table | here\n--- | ---"),
        ("heading", 2, "## Closed ATX ##"),
    ]
    assert extract_bytes(b"## Closed ATX ##\n\ntext", "markdown").title == "Closed ATX"


@pytest.mark.parametrize(
    ("source", "title", "front_matter"),
    [
        ('---\ntitle: "Release notes: 2.0"\ntags: [a]\n---\n\n# Heading\n', "Release notes: 2.0", 3),
        ("---\nauthor: me\n...\n\n# Heading\n\nText.\n", "Heading", 2),
        ("---\r\ntitle: Windows lines\r\n---\r\n\r\nText.\r\n", "Windows lines", 2),
        ("---\n: not [yaml\n---\n\nFirst words.\n", "First words.", 2),
        ("---\n\nA rule first, never closed.\n", "A rule first, never closed.", 0),
    ],
)
def test_front_matter_names_the_document_when_it_has_a_title(
    source: str, title: str, front_matter: int
) -> None:
    """`front_matter`: the lines between its `---` marks, which make one block."""
    doc = extract_bytes(source.encode(), "markdown")
    assert doc.title == title and doc.text == source
    first = doc.text[doc.blocks[0].start : doc.blocks[0].end]
    if front_matter:
        assert first.splitlines()[0] == "---" and first.count("\n") == front_matter
    else:
        assert first == "---"  # a thematic break, a paragraph of its own


@pytest.mark.parametrize(
    ("source", "title"),
    [
        (
            "# Tool [![Build](https://ci.example/b.svg)](https://ci.example) "
            "[![DOI](https://doi.example/d.svg)](https://doi.example)\n\nText.\n",
            "Tool",
        ),
        (
            "## Use **bold**, _emphasis_ and [a link](https://x.example) in `snake_case`\n",
            "Use bold, emphasis and a link in snake_case",
        ),
        ("# ![Acme logo](logo.png)\n\nText.\n", "Acme logo"),  # only an image: its alt text
        ("# Fish &amp; chips <br/> \\# 1\n", "Fish & chips # 1"),
        ("Setext with `code`\n===\n", "Setext with code"),
        (
            "[![Build](https://ci.example/b.svg)](https://ci.example)\n\n"
            "A *plain* first line, [docs](https://d.example)\n",
            "A plain first line, docs",  # a line of badges is no title
        ),
    ],
)
def test_a_markdown_title_reads_past_inline_syntax(source: str, title: str) -> None:
    doc = extract_bytes(source.encode(), "markdown")
    assert doc.title == title and doc.text == source


def test_a_plain_text_title_skips_rules_of_punctuation() -> None:
    source = "==========================\nBike Sharing Dataset\n==========================\n\nBody.\n"
    assert extract_bytes(source.encode(), "text").title == "Bike Sharing Dataset"
    assert extract_bytes(b"***\n\n  Spaced   out  \n", "text").title == "Spaced out"


def test_html_keeps_the_main_content_without_navigation_scripts_or_footers() -> None:
    page = (
        b"<html><head><title>T</title><style>p{}</style></head><body><header>Site</header><nav>Menu</nav>"
        b"<div role='navigation'>More menu</div><article><h2>Story</h2><p>Body <b>bold</b> text.</p>"
        b"<ul><li>one</li><li>two</li></ul><script>alert(1)</script></article><footer>(c)</footer></body></html>"
    )
    doc = extract_bytes(page, "html")
    assert doc.title == "T"
    assert _blocks(doc) == [
        ("heading", "Story"),
        ("paragraph", "Body bold text."),
        ("paragraph", "one"),
        ("paragraph", "two"),
    ]


def test_html_preformatted_text_keeps_its_lines_and_indentation() -> None:
    page = (
        b"<main><p>Run   this:</p><pre><code># fetch it\npip install x\n\nif ok:\n    run()  \n</code></pre>"
        b"<p>Then<br>done.</p></main>"
    )
    assert _blocks(extract_bytes(page, "html")) == [
        ("paragraph", "Run this:"),
        ("paragraph", "# fetch it\npip install x\n\nif ok:\n    run()"),
        ("paragraph", "Then"),
        ("paragraph", "done."),
    ]


@pytest.mark.parametrize(
    ("page", "text"),
    [
        # No declaration: UTF-8 when the bytes are UTF-8, else windows-1252 (smart quotes).
        ("<p>Café über 日本</p>".encode(), "Café über 日本"),
        (b"<p>Caf\xe9 \x93quoted\x94</p>", "Café \u201cquoted\u201d"),
        # Declared: as the page says, in a <meta> or an XML declaration; a byte-order mark wins.
        (b'<meta charset="iso-8859-1"><p>Caf\xe9</p>', "Café"),
        ('<?xml version="1.0" encoding="euc-jp"?><p>日本</p>'.encode("euc-jp"), "日本"),
        ('<?xml version="1.0" encoding="no-such"?><p>Café</p>'.encode(), "Café"),
        ("<p>Café</p>".encode("utf-16"), "Café"),
    ],
)
def test_html_is_read_in_its_encoding(page: bytes, text: str) -> None:
    assert extract_bytes(page, "html").text == text


def test_pdf_pages_are_kept_apart_and_numbered() -> None:
    doc = extract_bytes(make_pdf([["Page one line."], ["Page two line.", "And more."]]), "pdf")
    assert doc.page_starts is not None and len(doc.page_starts) == 2
    second = doc.text.index("Page two")
    assert doc.page_at(0) == 1 and doc.page_at(second) == 2
    assert doc.text[doc.page_starts[1] :].startswith("Page two line.")


def test_docx_headings_come_from_their_styles() -> None:
    doc = extract_bytes(make_docx("Report", ["Intro text."], "Findings", ["It works."]), "docx")
    assert _blocks(doc) == [
        ("heading", "Report"),
        ("paragraph", "Intro text."),
        ("heading", "Findings"),
        ("paragraph", "It works."),
    ]
    assert doc.title == "Report"


def test_an_html_table_row_is_one_line_of_its_cells() -> None:
    page = (
        b"<html><body><main><h1>Plans</h1><table><thead><tr><th>Plan</th><th>Price</th></tr></thead>"
        b"<tbody><tr><td>Basic</td><td>10</td></tr><tr><td>Pro</td><td>25<br>per month</td></tr>"
        b"<tr><td></td><td> </td></tr></tbody></table><p>After.</p></main></body></html>"
    )
    assert _blocks(extract_bytes(page, "html")) == [
        ("heading", "Plans"),
        ("paragraph", "Plan | Price"),
        ("paragraph", "Basic | 10"),
        ("paragraph", "Pro | 25 per month"),
        ("paragraph", "After."),
    ]


def test_a_docx_table_stays_where_it_stands_and_a_merged_cell_is_read_once() -> None:
    import docx

    document = docx.Document()
    document.add_heading("Plans", level=1)
    document.add_paragraph("Prices per month:")
    table = document.add_table(rows=4, cols=3)  # the last row stays empty
    table.cell(0, 0).merge(table.cell(0, 2)).text = "Monthly prices"
    for r, row in enumerate([["Basic", "10", "EUR"], ["Pro", "25", "EUR"]], start=1):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_heading("Support", level=1)
    document.add_paragraph("Email us.")
    out = io.BytesIO()
    document.save(out)
    doc = extract_bytes(out.getvalue(), "docx")
    assert _blocks(doc) == [
        ("heading", "Plans"),
        ("paragraph", "Prices per month:"),
        ("paragraph", "Monthly prices"),
        ("paragraph", "Basic | 10 | EUR"),
        ("paragraph", "Pro | 25 | EUR"),
        ("heading", "Support"),
        ("paragraph", "Email us."),
    ]


@pytest.mark.parametrize(
    ("data", "kind", "message"),
    [
        (b"", "text", "empty"),
        (b"   \n ", "markdown", "empty"),
        (b"\x00\x01binary", "text", "binary content"),
        (b"not a pdf at all", "pdf", "does not start with %PDF"),
        (b"%PDF-1.4\ngarbage", "pdf", "corrupt PDF"),
        (b"PK\x03\x04 not really a zip", "docx", "DOCX"),
        (b"<html><body><nav>only nav</nav></body></html>", "html", "no text left"),
    ],
)
def test_unreadable_content_fails_with_its_reason(data: bytes, kind: str, message: str) -> None:
    with pytest.raises(ExtractionError, match=message):
        extract_bytes(data, kind)


def test_an_inline_document_keeps_its_title_and_text() -> None:
    doc = extract_inline("Plain words.\n\nMore words.", "Given title")
    assert doc.title == "Given title" and doc.text == "Plain words.\n\nMore words."
    with pytest.raises(ExtractionError, match="empty"):
        extract_inline("  ", "t")


def test_every_extracted_type_is_one_a_search_may_filter_by() -> None:
    assert set(DOCUMENT_TYPES) == {*SUPPORTED_SUFFIXES.values(), "inline"}
