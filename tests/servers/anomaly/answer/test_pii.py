"""PII detection with checksums that keep false alarms down, and masking."""

from __future__ import annotations

import pytest

from servers.anomaly.answer.pii import find_pii, luhn_valid


@pytest.mark.parametrize(
    ("text", "kind", "masked"),
    [
        ("write to jane.doe@example.com today", "email", "j***@example.com"),
        ("card 4111 1111 1111 1111 on file", "payment_card", "************1111"),
        ("card 5500-0000-0000-0004 on file", "payment_card", "************0004"),
        ("SSN 123-45-6789 here", "us_ssn", "***-**-6789"),
        ("call +1 415-555-0132 now", "phone", "*******0132"),
        ("call (020) 7946 0958 now", "phone", "*******0958"),
        ("IBAN GB82 WEST 1234 5698 7654 32 please", "iban", "GB****************5432"),
        ("NI number AB 12 34 56 C", "uk_nino", "********C"),
    ],
)
def test_each_kind_is_found_and_masked(text: str, kind: str, masked: str) -> None:
    found = find_pii(text)
    assert [(f.type, f.masked) for f in found] == [(kind, masked)]
    assert "1111 1111" not in found[0].masked


@pytest.mark.parametrize(
    "text",
    [
        "order 4111 1111 1111 1112 failed",  # fails Luhn
        "SSN 000-12-3456 is never issued",
        "SSN 666-12-3456 is never issued",
        "released on 2023-10-05 at 14:30",
        "revenue was 12,500,000 in 2023",
        "version 1.2.3 shipped",
    ],
)
def test_look_alikes_are_not_flagged(text: str) -> None:
    assert find_pii(text) == []


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
