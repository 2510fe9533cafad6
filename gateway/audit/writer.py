"""`AuditWriter`: where audit events go, and the in-memory writer for tests.

The contract, for every writer:

- `write(event)` returns only once the event is durable as the writer promises
  (committed, for the PostgreSQL writer); the gateway answers the client after that.
- A failure raises `AuditWriteError`; the gateway then fails the call closed.
- `close()` writes what is pending, then refuses new events; it is idempotent.

The audit issue replaces the table behind `PostgresAuditWriter` with a hash chain;
callers keep this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from bastion.errors import RuntimeFailure
from gateway.audit.events import AuditEvent

__all__ = ["AuditWriteError", "AuditWriter", "MemoryAuditWriter"]


class AuditWriteError(RuntimeFailure):
    """An audit event could not be written; the call it describes must fail."""

    status_code = 503


class AuditWriter(ABC):
    """Appends audit events; see the module docstring for the contract."""

    @abstractmethod
    async def write(self, event: AuditEvent) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...


class MemoryAuditWriter(AuditWriter):
    """Keeps events in a list, in write order (one process, nothing durable)."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self._closed = False

    async def write(self, event: AuditEvent) -> None:
        if self._closed:
            raise AuditWriteError("the audit writer is closed; no event can be recorded")
        self.events.append(event)

    async def close(self) -> None:
        self._closed = True
