"""Personal data in text: emails, phone numbers, payment cards (Luhn), national ids, IBANs.

Each finding says its type, where it is, and a masked form (never the value itself:
the result may be logged or shown to a reviewer). Checks keep false alarms down:
card numbers must pass the Luhn checksum, IBANs the mod-97 check, US SSNs must not
use the never-issued areas (000, 666, 900-999), group 00 or serial 0000, and a digit
run counts as a phone number only with a phone-like shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PiiFinding", "find_pii", "luhn_valid"]

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_SSN = re.compile(r"\b(?!000|666|9\d\d)(\d{3})-(?!00)(\d{2})-(?!0000)(\d{4})\b")
_UK_NINO = re.compile(r"\b(?![DFIQUV])[A-Z](?![DFIQUVO])[A-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?![\w-])"
    r"|(?<![\w+])\+\d{8,14}\b"
)


@dataclass(frozen=True)
class PiiFinding:
    type: str
    start: int
    end: int
    masked: str


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_valid(text: str) -> bool:
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def _mask(text: str, keep: int = 4) -> str:
    visible = text[-keep:] if keep else ""
    return "*" * max(len(text) - keep, 0) + visible


_SSN_SHAPE = re.compile(r"^\d{3}-\d{2}-\d{4}$")


def _phone_like(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    if not 7 <= len(digits) <= 15 or _SSN_SHAPE.match(text):
        return False
    # Dates, times, versions and decimals are digit groups too; phones have separators or a '+'.
    return text.startswith("+") or "(" in text or (bool(re.search(r"\d[ .-]\d", text)) and len(digits) >= 9)


def find_pii(text: str) -> list[PiiFinding]:
    found: list[PiiFinding] = []
    taken: list[tuple[int, int]] = []

    def add(kind: str, start: int, end: int, masked: str) -> None:
        if any(start < e and s < end for s, e in taken):
            return
        taken.append((start, end))
        found.append(PiiFinding(kind, start, end, masked))

    for m in _EMAIL.finditer(text):
        user, _, domain = m.group().partition("@")
        add("email", m.start(), m.end(), f"{user[:1]}***@{domain}")
    for m in _SSN.finditer(text):
        add("us_ssn", m.start(), m.end(), "***-**-" + m.group(3))
    for m in _IBAN.finditer(text):
        if _iban_valid(m.group()):
            add("iban", m.start(), m.end(), m.group()[:2] + _mask(m.group().replace(" ", "")[2:]))
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            add("payment_card", m.start(), m.end(), _mask(digits))
    for m in _UK_NINO.finditer(text):
        add("uk_nino", m.start(), m.end(), _mask(m.group().replace(" ", ""), 1))
    for m in _PHONE.finditer(text):
        if _phone_like(m.group()):
            add("phone", m.start(), m.end(), _mask(re.sub(r"\D", "", m.group())))
    return sorted(found, key=lambda f: f.start)
