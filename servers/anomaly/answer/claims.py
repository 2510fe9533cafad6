"""What a sentence claims, in comparable form: content words, numbers, named entities, citations.

- content words: lower-cased, stop words dropped, crudely stemmed (plural and verb
  endings) so "grew" still differs from "growth" but "forecasts" meets "forecast";
- numbers: "1,234.5", "12%", "3.2 million", "$4bn" become values (with the scaled
  value too); single-digit integers are left out, they are mostly enumerations;
- entities: capitalised words or runs of them that do not start the sentence;
- citations: markers like [1], [doc-2] or [a, b], which name source ids.
"""

from __future__ import annotations

import re

__all__ = ["citations", "content_words", "entities", "number_values", "numbers", "strip_citations"]

# A plain word list reads better than a 130-line literal.
_STOP = frozenset(
    (  # noqa: SIM905
        "a an the and or but if then than so of to in on at by for with from as is are was were be "
        "been being this that these those it its they them their there here we our you your he she "
        "his her i me my not no do does did has have had will would can could should may might must "
        "also which who whom what when where why how all any each some such into over under about "
        "after before between during more most less very per via up down out only just both other "
        "same own too again further once"
    ).split()
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_CITATION = re.compile(r"\[([^\[\]\n]{1,80})\]")
_NUMBER = re.compile(
    r"(?<![\w.])[-+]?\$?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*"
    r"(%|percent\b|per cent\b|k\b|m\b|bn\b|thousand\b|million\b|billion\b|trillion\b)?",
    re.IGNORECASE,
)
_SCALE = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9, "trillion": 1e12}
_ENTITY = re.compile(r"\b[A-Z][a-zA-Z0-9&.-]*(?:\s+[A-Z][a-zA-Z0-9&.-]*)*")


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    return {
        _stem(w.lower().strip("'-")) for w in _WORD.findall(text) if w.lower() not in _STOP and len(w) > 1
    }


def citations(text: str) -> list[str]:
    ids: list[str] = []
    for marker in _CITATION.findall(text):
        ids.extend(part.strip() for part in re.split(r"[,;]", marker) if part.strip())
    return ids


def strip_citations(text: str) -> str:
    return _CITATION.sub(" ", text)


def numbers(text: str) -> list[tuple[str, set[float]]]:
    """(as written, comparable values) for each number; the values include the scaled one."""
    found: list[tuple[str, set[float]]] = []
    for m in _NUMBER.finditer(strip_citations(text)):
        whole, fraction, unit = m.group(1), m.group(2) or "", (m.group(3) or "").lower()
        value = float(whole.replace(",", "") + fraction)
        if not fraction and not unit and value < 10:
            continue
        values = {value}
        if unit in _SCALE:
            values.add(value * _SCALE[unit])
        found.append((m.group().strip(), values))
    return found


def number_values(text: str) -> set[float]:
    out: set[float] = set()
    for m in _NUMBER.finditer(text):
        whole, fraction, unit = m.group(1), m.group(2) or "", (m.group(3) or "").lower()
        value = float(whole.replace(",", "") + fraction)
        out.add(value)
        if unit in _SCALE:
            out.add(value * _SCALE[unit])
    return out


def entities(text: str) -> list[str]:
    body = strip_citations(text)
    found: list[str] = []
    for m in _ENTITY.finditer(body):
        if m.start() == len(body) - len(body.lstrip()):
            continue  # the sentence's first word is capitalised anyway
        name = m.group().strip(".-")
        if name.lower() not in _STOP and len(name) > 1:
            found.append(name)
    return found
