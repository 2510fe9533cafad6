"""Is each sentence supported by the passages it cites?

A sentence is checked against the sources it cites, or against all sources when it
cites none. Its support is the largest share of its content words found in one of
those sources. It is grounded when that share reaches `MIN_SUPPORT` and every number
in it appears in some source (a number found nowhere is the classic fabrication);
capitalised names found in no source are reported too. Sentences with fewer than
`MIN_WORDS` content words ("Yes.", "In short:") are not judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from servers.anomaly.answer.claims import (
    citations,
    content_words,
    entities,
    number_values,
    numbers,
    strip_citations,
)
from servers.anomaly.answer.sentences import Sentence

__all__ = ["MIN_SUPPORT", "MIN_WORDS", "Grounding", "SourceIndex", "ground"]

MIN_SUPPORT = 0.5
MIN_WORDS = 3


@dataclass
class SourceIndex:
    """Sources prepared once: their words, numbers and lower-cased text, by id."""

    words: dict[str, set[str]]
    values: set[float]
    text: str

    @classmethod
    def build(cls, sources: dict[str, str]) -> SourceIndex:
        values: set[float] = set()
        for text in sources.values():
            values |= number_values(text)
        return cls(
            {sid: content_words(text) for sid, text in sources.items()},
            values,
            "\n".join(sources.values()).lower(),
        )


@dataclass
class Grounding:
    sentence: Sentence
    judged: bool
    support: float = 0.0
    source: str | None = None
    cited: list[str] = field(default_factory=list[str])
    unknown_citations: list[str] = field(default_factory=list[str])
    unsupported_numbers: list[str] = field(default_factory=list[str])
    unsupported_entities: list[str] = field(default_factory=list[str])

    @property
    def grounded(self) -> bool:
        return not self.judged or (self.support >= MIN_SUPPORT and not self.unsupported_numbers)


def _matches(values: set[float], known: set[float]) -> bool:
    return any(abs(v - k) <= 1e-9 * max(1.0, abs(k)) for v in values for k in known)


def ground(sentence: Sentence, index: SourceIndex) -> Grounding:
    cited = citations(sentence.text)
    known = [c for c in cited if c in index.words]
    result = Grounding(
        sentence, judged=False, cited=known, unknown_citations=[c for c in cited if c not in index.words]
    )
    result.unsupported_numbers = [
        text for text, values in numbers(sentence.text) if not _matches(values, index.values)
    ]
    result.unsupported_entities = [e for e in entities(sentence.text) if e.lower() not in index.text]
    words = content_words(strip_citations(sentence.text))
    if len(words) < MIN_WORDS and not result.unsupported_numbers:
        return result
    result.judged = True
    pool = known or list(index.words)
    for sid in pool:
        share = len(words & index.words[sid]) / len(words) if words else 0.0
        if share > result.support:
            result.support, result.source = share, sid
    return result
