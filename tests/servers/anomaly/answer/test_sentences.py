"""Sentence splitting that respects abbreviations, decimals and citation markers."""

from __future__ import annotations

from servers.anomaly.answer.sentences import split_sentences


def test_abbreviations_decimals_and_citations_stay_inside_their_sentence() -> None:
    text = "Revenue grew 12.5% in 2023 [1]. Dr. Smith, e.g. the CFO, said so. It was large!"
    parts = split_sentences(text)
    assert [p.text for p in parts] == [
        "Revenue grew 12.5% in 2023 [1].",
        "Dr. Smith, e.g. the CFO, said so.",
        "It was large!",
    ]
    assert all(text[p.start : p.end] == p.text for p in parts)


def test_list_items_are_sentences_of_their_own() -> None:
    parts = split_sentences("Two reasons:\n- costs fell\n- sales rose")
    assert [p.text for p in parts] == ["Two reasons:", "- costs fell", "- sales rose"]
