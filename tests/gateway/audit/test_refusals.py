"""`RefusalRecorder`: one event per source and window, the rest counted into one more."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from gateway.audit import AuditEvent, AuditWriteError, AuditWriter, MemoryAuditWriter
from gateway.audit.refusals import OVERFLOW, RefusalRecorder

WINDOW = 0.2


def _refusal(request_id: str, *, at: datetime | None = None) -> AuditEvent:
    return AuditEvent(
        time=at or datetime.now(UTC),
        action="POST /mcp",
        decision="deny",
        outcome="unauthenticated",
        latency_ms=0.1,
        principal=None,
        reasons=("unknown or invalid API key",),
        request_id=request_id,
        client_address="192.0.2.7",
    )


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (at most 5 s) until `condition()` holds."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.01)


async def test_the_first_refusal_is_written_and_the_rest_of_the_window_counted_into_one_event() -> None:
    audit = MemoryAuditWriter()
    recorder = RefusalRecorder(audit, window=WINDOW)
    start = datetime(2026, 12, 6, 14, 0, 5, tzinfo=UTC)
    await recorder.refused("a", _refusal("r1", at=start))
    assert [e.request_id for e in audit.events] == ["r1"]
    assert audit.events[0].reasons == ("unknown or invalid API key",)  # written as it came
    for n in range(2, 5):
        await recorder.refused("a", _refusal(f"r{n}", at=start + timedelta(seconds=n)))
    assert len(audit.events) == 1  # counted, not written
    await _until(lambda: len(audit.events) == 2)
    summary = audit.events[1]
    # The last refusal's fields, and a reason saying how many and when.
    assert summary.request_id == "r4" and summary.outcome == "unauthenticated"
    assert summary.reasons == (
        "unknown or invalid API key",
        "3 refusals like this one between 2026-12-06T14:00:07Z and 2026-12-06T14:00:09Z, "
        "recorded as this one event",
    )
    # The window is closed: the source's next refusal is written again.
    await recorder.refused("a", _refusal("r5"))
    assert [e.request_id for e in audit.events] == ["r1", "r4", "r5"]
    await recorder.close()


async def test_sources_are_counted_apart() -> None:
    audit = MemoryAuditWriter()
    recorder = RefusalRecorder(audit, window=WINDOW)
    await recorder.refused(("unauthenticated", "192.0.2.7", "unknown"), _refusal("a1"))
    await recorder.refused(("unauthenticated", "192.0.2.8", "unknown"), _refusal("b1"))
    await recorder.refused(("unauthenticated", "192.0.2.7", "unknown"), _refusal("a2"))
    assert [e.request_id for e in audit.events] == ["a1", "b1"]
    await _until(lambda: len(audit.events) == 3)
    assert audit.events[2].request_id == "a2" and "1 refusal like this one" in audit.events[2].reasons[-1]
    await recorder.close()


async def test_a_quiet_source_frees_its_place_when_its_window_ends() -> None:
    audit = MemoryAuditWriter()
    recorder = RefusalRecorder(audit, window=WINDOW, max_sources=1)
    await recorder.refused("a", _refusal("a1"))
    await asyncio.sleep(WINDOW * 2)
    assert len(audit.events) == 1  # nothing counted: nothing more to write
    # A new source gets the one place: written under its own name, not the overflow's.
    await recorder.refused("b", _refusal("b1"))
    assert audit.events[-1].reasons == ("unknown or invalid API key",)
    await recorder.close()


async def test_sources_past_the_limit_share_one_overflow_source() -> None:
    audit = MemoryAuditWriter()
    recorder = RefusalRecorder(audit, window=WINDOW, max_sources=2)
    for source in ("a", "b", "c", "d", "e"):
        await recorder.refused(source, _refusal(source))
    # a and b have their own windows; c opened the overflow's, d and e were counted in it.
    assert [e.request_id for e in audit.events] == ["a", "b", "c"]
    assert audit.events[2].reasons[-1] == "one of more refused sources than are told apart at once"
    await _until(lambda: len(audit.events) == 4)
    assert audit.events[3].request_id == "e" and "2 refusals like this one" in audit.events[3].reasons[-1]
    assert OVERFLOW == ("overflow",)
    await recorder.close()


async def test_close_writes_what_is_counted_and_then_records_nothing() -> None:
    audit = MemoryAuditWriter()
    recorder = RefusalRecorder(audit, window=3600)
    await recorder.refused("a", _refusal("a1"))
    await recorder.refused("a", _refusal("a2"))
    await recorder.refused("a", _refusal("a3"))
    await recorder.close()  # does not wait an hour
    assert [e.request_id for e in audit.events] == ["a1", "a3"]
    assert re.fullmatch(r"2 refusals like this one between \S+Z and \S+Z, recorded as this one event",
                        audit.events[1].reasons[-1])  # fmt: skip
    await recorder.refused("a", _refusal("a4"))
    assert len(audit.events) == 2


class _BrokenWriter(AuditWriter):
    async def write(self, event: AuditEvent) -> None:
        raise AuditWriteError("the database is gone")

    async def close(self) -> None:
        return None


async def test_a_refusal_that_cannot_be_written_is_logged_and_refused_all_the_same(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = RefusalRecorder(_BrokenWriter(), window=WINDOW)
    with caplog.at_level(logging.ERROR, logger="gateway.audit.refusals"):
        await recorder.refused("a", _refusal("a1"))  # does not raise
        await recorder.refused("a", _refusal("a2"))
        await recorder.close()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2  # the first refusal, and the count close wrote
    assert all("could not be audited" in m and "the database is gone" in m for m in messages)


@pytest.mark.parametrize(("window", "max_sources", "problem"), [(0, 10, "window"), (1, 0, "max_sources")])
def test_settings_out_of_range_are_refused_with_a_message(
    window: float, max_sources: int, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        RefusalRecorder(MemoryAuditWriter(), window=window, max_sources=max_sources)
