"""`score_answer`: how risky is it to show this answer as it is?

Each signal adds a risk r_i in [0, 1]; they combine as independent evidence,
risk = 1 - prod(1 - r_i), so one strong signal is enough and several weak ones add up:

    signal                                        r_i
    share s of judged sentences not grounded      0.2 + 0.6 s
    a number found in no source (two or more)     0.6 (0.8)
    a name found in no source                     0.2
    a citation naming no given source             0.3
    payment card, SSN, IBAN, national insurance   0.8
    email or phone number                         0.4
    best retrieval score below 0.3 (below 0.5)    0.45 (0.25)
    no sources at all                             0.5
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bastion.timeseries import SeriesInputError
from servers.anomaly.answer.grounding import Grounding, SourceIndex, ground
from servers.anomaly.answer.pii import find_pii
from servers.anomaly.answer.sentences import split_sentences

__all__ = ["MAX_ANSWER_CHARS", "MAX_SOURCES", "MAX_SOURCE_CHARS", "score_answer"]

MAX_ANSWER_CHARS = 100_000
MAX_SOURCES = 500
MAX_SOURCE_CHARS = 5_000_000
SENSITIVE = {"payment_card", "us_ssn", "iban", "uk_nino"}


def _sources(sources: object) -> dict[str, str]:
    if isinstance(sources, (str, bytes)) or not isinstance(sources, Sequence):
        raise SeriesInputError("`sources` must be a list of {id, text} objects.")
    if len(sources) > MAX_SOURCES:
        raise SeriesInputError(f"`sources` has {len(sources)} entries, above the limit of {MAX_SOURCES}.")
    out: dict[str, str] = {}
    for i, item in enumerate(sources):
        if not isinstance(item, Mapping) or not isinstance(item.get("text"), str):
            raise SeriesInputError(f"`sources[{i}]` must be an object with an `id` and a `text` string.")
        sid = str(item.get("id", i))
        if sid in out:
            raise SeriesInputError(f"`sources[{i}]` repeats the id {sid!r}: ids must be unique.")
        out[sid] = str(item["text"])
    if sum(len(t) for t in out.values()) > MAX_SOURCE_CHARS:
        raise SeriesInputError(
            f"the sources hold more than {MAX_SOURCE_CHARS} characters: send the cited passages only."
        )
    return out


def _retrieval(scores: object | None) -> list[float] | None:
    if scores is None:
        return None
    if isinstance(scores, (str, bytes)) or not isinstance(scores, Sequence):
        raise SeriesInputError("`retrieval_scores` must be a list of numbers in [0, 1].")
    values: list[float] = []
    for i, v in enumerate(scores):  # pyright: ignore[reportUnknownVariableType]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise SeriesInputError(
                f"`retrieval_scores[{i}]` is {v!r}: scores must be numbers in [0, 1] (normalise them first)."
            )
        values.append(float(v))
    return values


def score_answer(answer: object, sources: object, retrieval_scores: object | None = None) -> dict[str, Any]:
    if not isinstance(answer, str) or not answer.strip():
        raise SeriesInputError("`answer` is empty: there is nothing to score.")
    if len(answer) > MAX_ANSWER_CHARS:
        raise SeriesInputError(
            f"`answer` has {len(answer)} characters, above the limit of {MAX_ANSWER_CHARS}."
        )
    texts = _sources(sources)
    scores = _retrieval(retrieval_scores)
    index = SourceIndex.build(texts)
    pii = find_pii(answer)
    # Personal data is masked before grounding: its digits are not "numbers" to check,
    # and nothing this tool returns may repeat it.
    masked = list(answer)
    for finding in pii:
        masked[finding.start : finding.end] = "*" * (finding.end - finding.start)
    checks = [ground(s, index) for s in split_sentences("".join(masked))]
    risks: list[float] = []
    reasons: list[str] = []
    _grounding_risk(checks, bool(texts), risks, reasons)
    for kind in sorted({f.type for f in pii}):
        count = sum(1 for f in pii if f.type == kind)
        risks.append(0.8 if kind in SENSITIVE else 0.4)
        reasons.append(f"the answer contains {count} {kind.replace('_', ' ')} value(s)")
    if scores is not None and scores:
        top = max(scores)
        if top < 0.5:
            risks.append(0.45 if top < 0.3 else 0.25)
            reasons.append(f"low retrieval confidence: the best passage scored {top:.2f}")
    elif scores is not None:
        risks.append(0.45)
        reasons.append("low retrieval confidence: no passage was retrieved")
    risk = 1.0
    for r in risks:
        risk *= 1 - r
    return {
        "risk": round(1 - risk, 4),
        "reasons": reasons,
        "ungrounded_sentences": [_describe(c) for c in checks if not c.grounded],
        "pii": [{"type": f.type, "start": f.start, "end": f.end, "masked": f.masked} for f in pii],
        "sentences": len(checks),
    }


def _grounding_risk(
    checks: list[Grounding], have_sources: bool, risks: list[float], reasons: list[str]
) -> None:
    if not have_sources:
        risks.append(0.5)
        reasons.append("no sources were given: nothing in the answer can be checked")
        return
    judged = [c for c in checks if c.judged]
    ungrounded = [c for c in judged if not c.grounded]
    if ungrounded:
        share = len(ungrounded) / len(judged)
        risks.append(0.2 + 0.6 * share)
        reasons.append(f"{len(ungrounded)} of {len(judged)} sentences are not supported by the sources")
    made_up = [n for c in checks for n in c.unsupported_numbers]
    if made_up:
        risks.append(0.8 if len(made_up) > 1 else 0.6)
        reasons.append(f"numbers found in no source: {', '.join(made_up[:5])}")
    names = [e for c in checks for e in c.unsupported_entities]
    if names:
        risks.append(0.2)
        reasons.append(f"names found in no source: {', '.join(names[:5])}")
    unknown = sorted({u for c in checks for u in c.unknown_citations})
    if unknown:
        risks.append(0.3)
        reasons.append(f"citations to sources that were not given: {', '.join(unknown[:5])}")


def _describe(check: Grounding) -> dict[str, Any]:
    return {
        "text": check.sentence.text,
        "start": check.sentence.start,
        "end": check.sentence.end,
        "support": round(check.support, 3),
        "best_source": check.source,
        "unsupported_numbers": check.unsupported_numbers,
        "cited": check.cited,
    }
