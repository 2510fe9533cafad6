"""A 2025-11-25 session belongs to the API key that opened it: another key, whatever its
role, cannot call, cancel, end or resume on it, nor replay another session's events."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.gateway.conftest import GatewayProcess
from tests.gateway.test_gateway import _result
from tests.gateway.test_sessions import Session


def _event_ids(response: httpx.Response) -> list[str]:
    return [line[3:].strip() for line in response.text.splitlines() if line.startswith("id:")]


def _resumed(session: Session, last_event_id: str, key: str | None = None) -> str:
    """What a GET resuming after `last_event_id` delivers within a second (the stream stays open)."""
    headers = {**session._as(key), "last-event-id": last_event_id}
    headers.pop("content-type")
    received: list[str] = []
    deadline = time.monotonic() + 1.0
    try:
        with session.http.stream("GET", "/mcp", headers=headers, timeout=httpx.Timeout(5.0, read=1.0)) as got:
            received.append(f"status {got.status_code}\n")
            for text in got.iter_text():
                received.append(text)
                if time.monotonic() > deadline:
                    break
    except httpx.ReadTimeout:
        pass
    return "".join(received)


def test_another_key_cannot_use_a_session_it_did_not_open(gateway: GatewayProcess) -> None:
    owner = Session(gateway)
    try:
        for other in (gateway.key("viewer"), gateway.new_key("admin", "second-admin")):
            listed = owner.post("tools/list", {}, as_key=other)
            assert listed.status_code == 404, listed.text
            called = owner.post("tools/call", {"name": "system_version", "arguments": {}}, as_key=other)
            assert called.status_code == 404, called.text  # the fast path refuses it as the SDK does
            ended = owner.http.delete("/mcp", headers=owner._as(other))
            assert ended.status_code == 404, ended.text
        still = owner.echo("still mine")
        assert still.status_code == 200 and _result(still)["result"]["content"][0]["text"] == "still mine"
    finally:
        owner.close()


def test_another_key_cannot_cancel_a_call_on_a_session_it_did_not_open(gateway: GatewayProcess) -> None:
    owner = Session(gateway)
    try:
        body = {
            "jsonrpc": "2.0",
            "id": 77,
            "method": "tools/call",
            "params": {"name": "counter_hold", "arguments": {"seconds": 1.5}},
        }
        with ThreadPoolExecutor(1) as pool:
            call = pool.submit(owner.http.post, "/mcp", headers=owner.headers, content=json.dumps(body))
            time.sleep(0.5)  # the call is running upstream
            cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 77}}
            refused = owner.http.post(
                "/mcp", headers=owner._as(gateway.key("viewer")), content=json.dumps(cancel)
            )
            answer = call.result(timeout=30)
        assert refused.status_code == 404, refused.text
        assert _result(answer)["result"]["content"][0]["text"] == "held"
    finally:
        owner.close()


def test_a_resumed_stream_replays_only_its_own_sessions_events(gateway: GatewayProcess) -> None:
    """Stream ids are request ids, which every session reuses: a resume must stay within the
    session whose event it names."""
    viewer = Session(gateway, gateway.key("viewer"))
    admin = Session(gateway)
    try:
        mine = viewer.post("tools/list", {})  # id 2 on the viewer's session (SSE, with event ids)
        assert mine.status_code == 200 and _event_ids(mine), mine.text
        secret = {
            "name": "counter_echo",
            "arguments": {"text": "ADMIN-SECRET-42"},
            "_meta": {"progressToken": 1},
        }
        theirs = admin.post("tools/call", secret)  # the same request id 2, on the admin's session
        assert "ADMIN-SECRET-42" in theirs.text and _event_ids(theirs), theirs.text
        after_mine = _resumed(viewer, _event_ids(mine)[0])
        assert after_mine.startswith("status 200") and "ADMIN-SECRET-42" not in after_mine
        after_theirs = _resumed(viewer, _event_ids(theirs)[0])
        assert "ADMIN-SECRET-42" not in after_theirs
        # The admin's own resume still works: resumability is kept, only scoped.
        assert "ADMIN-SECRET-42" in _resumed(admin, _event_ids(theirs)[0])
    finally:
        viewer.close()
        admin.close()
