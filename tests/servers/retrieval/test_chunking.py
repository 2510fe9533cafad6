"""Chunking: sizes in model tokens, overlap, sections and exact offsets."""

from __future__ import annotations

import itertools

from servers.retrieval.chunking import chunk_document
from servers.retrieval.embeddings.onnx import MiniLMOnnxProvider
from servers.retrieval.extract import extract_bytes, extract_inline
from servers.retrieval.extract.base import Extracted, TextBuilder


def test_chunks_stay_within_the_target_in_model_tokens_and_overlap(provider: MiniLMOnnxProvider) -> None:
    text = "# Guide\n\n" + " ".join(
        f"Step {i} tightens bolt number {i} to the torque in table {i}." for i in range(80)
    )
    doc = extract_inline(text, "")
    chunks = chunk_document(doc, provider.token_spans, target=60, overlap=15)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.tokens <= 60
        assert len(provider.token_spans(text[chunk.start : chunk.end])) <= 60
    for before, after in itertools.pairwise(chunks):
        assert after.start < before.end  # overlapping sentences
        assert after.start > before.start


def test_a_heading_opens_a_chunk_and_names_its_section(provider: MiniLMOnnxProvider) -> None:
    text = (
        "# Manual\n\nIntro words here.\n\n## Safety\n\nWear gloves.\n\n"
        "### Eyes\n\nWear goggles.\n\n## Care\n\nOil it."
    )
    chunks = chunk_document(extract_inline(text, ""), provider.token_spans, target=200, overlap=0)
    sections = [(c.context, text[c.start : c.end]) for c in chunks]
    assert sections == [
        ("Manual", "# Manual\n\nIntro words here."),
        ("Manual > Safety", "## Safety\n\nWear gloves."),
        ("Manual > Safety > Eyes", "### Eyes\n\nWear goggles."),
        ("Manual > Care", "## Care\n\nOil it."),
    ]


def test_setext_and_closed_headings_name_their_sections_by_their_words(provider: MiniLMOnnxProvider) -> None:
    text = (
        "Manual\n======\n\nIntro.\n\nSafety\n------\n\nWear gloves.\n\n### Eyes ###\n\n```\n# goggles on\n```"
    )
    chunks = chunk_document(extract_inline(text, ""), provider.token_spans, target=200, overlap=0)
    assert [(c.context, text[c.start : c.end]) for c in chunks] == [
        ("Manual", "Manual\n======\n\nIntro."),
        ("Manual > Safety", "Safety\n------\n\nWear gloves."),
        ("Manual > Safety > Eyes", "### Eyes ###\n\n```\n# goggles on\n```"),
    ]


def test_markdown_section_names_read_past_links_badges_and_emphasis(provider: MiniLMOnnxProvider) -> None:
    text = (
        "# NAB [![Build](https://ci.example/b.svg)](https://ci.example)\n\nIntro.\n\n"
        "## The `score` of a **detector** ([paper](https://p.example))\n\nHow."
    )
    chunks = chunk_document(extract_inline(text, ""), provider.token_spans, target=200, overlap=0)
    assert [c.context for c in chunks] == ["NAB", "NAB > The score of a detector (paper)"]
    # Outside Markdown the same characters are the heading's own words.
    html = b"<html><body><h1>Pass *args and [x](y)</h1><p>Body text.</p></body></html>"
    (chunk,) = chunk_document(extract_bytes(html, "html"), provider.token_spans, target=200, overlap=0)
    assert chunk.context == "Pass *args and [x](y)"


def test_a_sentence_longer_than_the_target_is_cut_at_token_boundaries(provider: MiniLMOnnxProvider) -> None:
    text = "word " * 300
    chunks = chunk_document(extract_inline(text, ""), provider.token_spans, target=50, overlap=0)
    assert len(chunks) == 6
    assert all(text[c.start : c.end].strip() == text[c.start : c.end] for c in chunks)
    assert "".join(text[c.start : c.end] for c in chunks).replace(" ", "") == text.replace(" ", "")


def test_a_chunk_never_spans_two_pages(provider: MiniLMOnnxProvider) -> None:
    builder = TextBuilder()
    page_starts: list[int] = []
    for page in ("First page text.", "Second page text.", "Third page text."):
        builder.separate()
        page_starts.append(builder.length)
        builder.add(page)
    doc = Extracted(builder.text(), "pdf", "", builder.blocks, page_starts)
    chunks = chunk_document(doc, provider.token_spans, target=200, overlap=20)
    assert [(c.page, doc.text[c.start : c.end]) for c in chunks] == [
        (1, "First page text."),
        (2, "Second page text."),
        (3, "Third page text."),
    ]
