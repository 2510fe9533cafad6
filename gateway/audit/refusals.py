"""`RefusalRecorder`: requests refused before any decision, in the audit log, without
letting a flood of them become a flood of writes.

A request whose credentials are refused (malformed, unknown, revoked, expired) or whose
principal has no rate-limit token left never reaches policy, yet it is a decision an
auditor wants to see: a revoked key still in use, a client guessing keys, a principal
hammering the gateway. Each such refusal belongs to a source (who, from where, why). The
first refusal of a source is written before its answer, like every other event, and opens
a window of `window` seconds; the source's later refusals in that window are only counted.
When the window has passed, the count is written as one event (the last refusal's fields,
its reasons saying how many and between when), so a client refused ten thousand times a
minute costs the audit table two rows a minute, and nothing refused goes unrecorded.

At most `max_sources` sources have a window open at once; refusals of further sources
share one overflow source until windows close, so memory stays bounded whatever clients
send. A failed write is logged and counted (`bastion_audit_write_failures_total`): the
request is refused either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from gateway.audit.events import AuditEvent
from gateway.audit.writer import AuditWriter

__all__ = ["OVERFLOW", "RefusalRecorder"]

logger = logging.getLogger(__name__)

OVERFLOW = ("overflow",)  # the source of refusals past `max_sources`


@dataclass(slots=True)
class _Window:
    opened: float  # when its first refusal was written (the recorder's clock)
    count: int = 0  # refusals since, not written yet
    first: datetime | None = None  # when the first of those arrived
    last: AuditEvent | None = None  # the last of those
    timer: asyncio.TimerHandle | None = None


class RefusalRecorder:
    """Writes one event per source and window, and the count of the rest; `close` writes
    what is counted (call it before the writer's own `close`)."""

    def __init__(
        self,
        audit: AuditWriter,
        *,
        window: float = 60.0,
        max_sources: int = 1_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not window > 0:
            raise ValueError(f"the refusal window must be > 0 seconds, got {window!r}")
        if max_sources < 1:
            raise ValueError(f"max_sources must be at least 1, got {max_sources!r}")
        self.audit = audit
        self.window = window
        self.max_sources = max_sources
        self._clock = clock
        self._windows: dict[Hashable, _Window] = {}
        self._writing: set[asyncio.Task[None]] = set()
        self._closed = False

    async def refused(self, source: Hashable, event: AuditEvent) -> None:
        """Record `event`, a refusal of `source`: written now when the source has no window
        open (returns once it is written), else counted."""
        if self._closed:
            return
        now = self._clock()
        window = self._windows.get(source)
        if window is not None and now - window.opened >= self.window:
            self._summarise(source)  # its window has passed; its timer has not run yet
            window = None
        if window is None and len(self._windows) >= self.max_sources:
            source = OVERFLOW
            window = self._windows.get(source)
            crowded = "one of more refused sources than are told apart at once"
            event = replace(event, reasons=(*event.reasons, crowded))
        if window is not None:
            if window.count == 0:
                window.first = event.time
            window.count += 1
            window.last = event
            return
        # Every window closes on its own time, counted or not, so that a source that went
        # quiet frees its place.
        timer = asyncio.get_running_loop().call_later(self.window, self._summarise, source)
        self._windows[source] = _Window(opened=now, timer=timer)
        await self._write(event)

    def _summarise(self, source: Hashable) -> None:
        """Close `source`'s window, writing what it counted (in the background)."""
        window = self._windows.pop(source, None)
        if window is None:
            return
        if window.timer is not None:
            window.timer.cancel()
        if window.count and window.last is not None and window.first is not None:
            last = window.last
            span = f"between {_stamp(window.first)} and {_stamp(last.time)}"
            counted = (
                f"{window.count} {_refusals(window.count)} like this one {span}, recorded as this one event"
            )
            summary = replace(last, reasons=(*last.reasons, counted))
            task = asyncio.get_running_loop().create_task(self._write(summary))
            self._writing.add(task)
            task.add_done_callback(self._writing.discard)

    async def _write(self, event: AuditEvent) -> None:
        try:
            await self.audit.write(event)
        except Exception as exc:
            logger.error("a refusal (%s, %s) could not be audited: %s", event.action, event.outcome, exc)

    async def close(self) -> None:
        """Write every count still open, then record nothing more."""
        self._closed = True
        for source in list(self._windows):
            self._summarise(source)
        while self._writing:
            await asyncio.gather(*self._writing)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _refusals(count: int) -> str:
    return "refusal" if count == 1 else "refusals"
