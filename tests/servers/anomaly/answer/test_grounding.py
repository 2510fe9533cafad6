"""Grounding one sentence against the sources it cites."""

from __future__ import annotations

from servers.anomaly.answer.claims import citations, numbers
from servers.anomaly.answer.grounding import SourceIndex, ground
from servers.anomaly.answer.sentences import Sentence

SOURCES = {
    "q3": "Acme Corp revenue grew 12.5% in Q3 2023 to $4.2 million, driven by demand in Europe.",
    "hr": "The company employs 350 people across three offices.",
}
INDEX = SourceIndex.build(SOURCES)


def _ground(text: str):
    return ground(Sentence(text, 0, len(text)), INDEX)


def test_a_supported_sentence_with_its_citation_is_grounded() -> None:
    check = _ground("Acme revenue grew 12.5% in Q3 2023 [q3].")
    assert check.grounded and check.cited == ["q3"] and check.support >= 0.8


def test_a_number_in_no_source_makes_a_sentence_ungrounded() -> None:
    check = _ground("Acme revenue grew 17.5% in Q3 2023 [q3].")
    assert not check.grounded
    assert check.unsupported_numbers == ["17.5%"]


def test_scaled_numbers_match_their_written_out_form() -> None:
    assert _ground("Revenue reached 4,200,000 dollars in Q3 [q3].").unsupported_numbers == []


def test_a_sentence_citing_the_wrong_source_is_not_supported_by_it() -> None:
    check = _ground("Acme revenue grew strongly in Europe during Q3 [hr].")
    assert check.cited == ["hr"]
    assert not check.grounded and check.support < 0.5


def test_unknown_citations_and_names_are_reported() -> None:
    check = _ground("Revenue grew thanks to Globex Industries [q9].")
    assert check.unknown_citations == ["q9"]
    assert "Globex Industries" in check.unsupported_entities


def test_citation_markers_and_enumerations_are_not_numbers() -> None:
    assert citations("as shown [1, q3]") == ["1", "q3"]
    assert numbers("three steps [2]: step 1 then 2") == []
