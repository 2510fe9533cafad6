"""The public surface of `gateway.audit`: the audit issue keeps it when it swaps the table."""

from __future__ import annotations

import gateway.audit

EXPECTED = {
    "AUDIT_BATCH_SIZE",
    "AUDIT_WRITE_SECONDS",
    "OUTCOMES",
    "AuditDurability",
    "AuditEvent",
    "AuditWriteError",
    "AuditWriter",
    "Decision",
    "MemoryAuditWriter",
    "PostgresAuditWriter",
    "digest_arguments",
}


def test_the_package_exports_exactly_its_public_names() -> None:
    assert set(gateway.audit.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(gateway.audit, name) is not None
