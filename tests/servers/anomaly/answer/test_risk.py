"""score_answer: grounded answers score low; fabrications, leaks and weak retrieval score high."""

from __future__ import annotations

import pytest

from bastion.timeseries import SeriesInputError
from servers.anomaly.answer import score_answer

SOURCES = [
    {
        "id": "1",
        "text": "Acme Corp revenue grew 12.5% in 2023 to 4.2 million dollars, driven by demand in Europe.",
    },
    {"id": "2", "text": "The company employs 350 people across three offices."},
]
GROUNDED = "Acme revenue grew 12.5% in 2023 to 4.2 million dollars [1]. The company employs 350 people [2]."


def test_a_grounded_answer_with_good_retrieval_scores_low() -> None:
    result = score_answer(GROUNDED, SOURCES, [0.82, 0.71])
    assert result["risk"] < 0.1
    assert result["reasons"] == [] and result["ungrounded_sentences"] == [] and result["pii"] == []


def test_a_fabricated_number_scores_high_and_names_the_number() -> None:
    result = score_answer(GROUNDED.replace("12.5%", "17.5%"), SOURCES, [0.82, 0.71])
    assert result["risk"] >= 0.6
    assert any("17.5%" in r for r in result["reasons"])
    assert result["ungrounded_sentences"][0]["unsupported_numbers"] == ["17.5%"]


def test_a_leaked_card_number_scores_high_and_is_never_echoed() -> None:
    result = score_answer(GROUNDED + " The card on file is 4111 1111 1111 1111.", SOURCES)
    assert result["risk"] >= 0.75
    assert result["pii"][0]["type"] == "payment_card"
    assert "4111 1111" not in str(result)


def test_low_retrieval_confidence_alone_raises_the_risk() -> None:
    result = score_answer(GROUNDED, SOURCES, [0.12, 0.05])
    assert 0.3 <= result["risk"] < 0.6
    assert result["reasons"] == ["low retrieval confidence: the best passage scored 0.12"]


def test_an_unsupported_answer_without_sources_is_risky() -> None:
    result = score_answer("The moon colony tripled its output under Zorg.", [])
    assert result["risk"] >= 0.5
    assert "no sources were given" in result["reasons"][0]


@pytest.mark.parametrize(
    ("answer", "sources", "scores", "message"),
    [
        ("  ", SOURCES, None, "`answer` is empty"),
        ("Fine.", [{"id": "1"}], None, "must be an object with an `id` and a `text`"),
        ("Fine.", [{"id": "1", "text": "a"}, {"id": "1", "text": "b"}], None, "repeats the id '1'"),
        ("Fine.", SOURCES, [1.5], r"`retrieval_scores\[0\]` is 1.5"),
    ],
)
def test_bad_input_is_refused_clearly(
    answer: str, sources: list[object], scores: list[float] | None, message: str
) -> None:
    with pytest.raises(SeriesInputError, match=message):
        score_answer(answer, sources, scores)
