"""Audit events: what the gateway decided and did, written before it answers.

events      AuditEvent, digest_arguments
writer      AuditWriter (the interface), MemoryAuditWriter, AuditWriteError
postgres    PostgresAuditWriter: group commit into `gateway.audit_events`
refusals    RefusalRecorder: refusals before any decision, once per source and window
"""

from gateway.audit.events import OUTCOMES, AuditEvent, Decision, digest_arguments
from gateway.audit.postgres import AUDIT_BATCH_SIZE, AUDIT_WRITE_SECONDS, AuditDurability, PostgresAuditWriter
from gateway.audit.writer import AuditWriteError, AuditWriter, MemoryAuditWriter

__all__ = [
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
]
