from __future__ import annotations

import hashlib
from datetime import datetime

import pytest

from gateway.audit import AuditEvent, digest_arguments


def test_the_digest_ignores_key_order_and_whitespace() -> None:
    a = digest_arguments({"sql": "select 1", "limit": 10, "opts": {"b": 1, "a": [1, 2]}})
    b = digest_arguments({"opts": {"a": [1, 2], "b": 1}, "limit": 10, "sql": "select 1"})
    assert a == b
    assert a == hashlib.sha256(b'{"limit":10,"opts":{"a":[1,2],"b":1},"sql":"select 1"}').hexdigest()


def test_the_digest_tells_different_arguments_apart() -> None:
    assert digest_arguments({"n": 1}) != digest_arguments({"n": "1"})
    assert digest_arguments(None) == hashlib.sha256(b"null").hexdigest()


def test_unserialisable_arguments_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        digest_arguments({"x": object()})


def test_an_event_gets_the_current_utc_time_by_default() -> None:
    event = AuditEvent(action="tools/list", decision="allow", outcome="ok", latency_ms=0.4, principal=None)
    assert event.time.tzinfo is not None and event.reasons == ()


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"decision": "maybe"}, "decision must be"),
        ({"time": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"latency_ms": -1.0}, "latency_ms"),
        ({"latency_ms": float("nan")}, "latency_ms"),
        ({"action": ""}, "non-empty"),
    ],
)
def test_an_inconsistent_event_is_refused(changes: dict[str, object], fragment: str) -> None:
    fields: dict[str, object] = {
        "action": "tools/call",
        "decision": "allow",
        "outcome": "ok",
        "latency_ms": 1.0,
        "principal": None,
    }
    with pytest.raises(ValueError, match=fragment):
        AuditEvent(**{**fields, **changes})  # type: ignore[arg-type]
