"""Refusals before any decision, audited through a real gateway: refused credentials and a
principal out of rate-limit tokens are written once per source and window, the rest
counted into one more event, and a request without credentials is not written at all."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from bastion.db.embedded import EmbeddedPostgres
from bastion.home import Home
from gateway.auth.api_keys import KEY_PREFIX, generate_key
from tests.gateway.conftest import GatewayProcess, counter_gateway
from tests.gateway.test_gateway import ENVELOPE, MODERN, _modern

WINDOW = 1.0  # the gateway's audit_refusal_window here
COUNTED = re.compile(
    r"(\d+) refusals? like this one between \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ and "
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, recorded as this one event"
)


@pytest.fixture(scope="module")
def refusing(shared_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway whose refusal windows last a second and whose principals get two requests
    at once, then one every two seconds."""
    settings = f"audit_refusal_window = {WINDOW}\nrate_limit_per_second = 0.5\nrate_limit_burst = 2"
    with counter_gateway(shared_home, tmp_path_factory, "refusals", settings) as process:
        yield process


def _list(gateway: GatewayProcess, request_id: str, authorization: str | None) -> httpx.Response:
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/list",
        "x-request-id": request_id,
    }
    if authorization is not None:
        headers["authorization"] = authorization
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": ENVELOPE}}
    return httpx.post(gateway.url + "/mcp", json=body, headers=headers, timeout=30)


def _events(gateway: GatewayProcess, request_ids: list[str]) -> list[dict[str, Any]]:
    with psycopg.connect(EmbeddedPostgres(Home(gateway.home)).dsn()) as conn:
        rows = conn.execute(
            "SELECT request_id, subject, key_id, action, decision, outcome, reasons, client_address "
            "FROM gateway.audit_events WHERE request_id = ANY(%s) ORDER BY id",
            (request_ids,),
        ).fetchall()
    names = ("request_id", "subject", "key_id", "action", "decision", "outcome", "reasons", "client_address")
    return [dict(zip(names, row, strict=True)) for row in rows]


def _until_events(gateway: GatewayProcess, request_ids: list[str], count: int) -> list[dict[str, Any]]:
    """The events of `request_ids` once there are `count` of them (bounded wait)."""
    deadline = time.monotonic() + WINDOW + 10
    while True:
        events = _events(gateway, request_ids)
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


def test_refused_credentials_are_audited_once_per_window_and_the_rest_counted(
    refusing: GatewayProcess,
) -> None:
    run = uuid.uuid4().hex[:8]
    made_up = generate_key()
    bogus = f"Bearer {KEY_PREFIX}{made_up.id}_{made_up.secret}"  # well formed, never issued
    ids = [f"{run}-unknown-{n}" for n in range(4)]
    for request_id in ids:
        refused = _list(refusing, request_id, bogus)
        assert refused.status_code == 401 and "unknown or invalid API key" in refused.text
    # The first is written before its answer; the other three are counted.
    first = _events(refusing, ids)
    assert first == [
        {
            "request_id": ids[0],
            "subject": None,
            "key_id": None,
            "action": "POST /mcp",
            "decision": "deny",
            "outcome": "unauthenticated",
            "reasons": ["unknown or invalid API key"],
            "client_address": "127.0.0.1",
        }
    ]
    # When the window ends, one more event holds the count, with the last refusal's fields.
    events = _until_events(refusing, ids, 2)
    assert len(events) == 2, events
    summary = events[1]
    assert summary["request_id"] == ids[3] and summary["outcome"] == "unauthenticated"
    assert summary["reasons"][0] == "unknown or invalid API key"
    counted = COUNTED.fullmatch(summary["reasons"][-1])
    assert counted is not None and counted[1] == "3", summary["reasons"]
    # Garbage that is not a Bastion key at all is refused and audited too, as its own source.
    garbage = f"{run}-garbage"
    assert _list(refusing, garbage, "Bearer not-a-key").status_code == 401
    [event] = _events(refusing, [garbage])
    assert event["outcome"] == "unauthenticated" and "not a Bastion API key" in event["reasons"][0]


def test_a_request_without_credentials_is_refused_and_not_audited(refusing: GatewayProcess) -> None:
    request_id = f"{uuid.uuid4().hex[:8]}-anonymous"
    refused = _list(refusing, request_id, None)
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    time.sleep(WINDOW + 0.5)  # nothing is counted for it either
    assert _events(refusing, [request_id]) == []


def test_a_revoked_key_still_in_use_is_audited_with_its_id(refusing: GatewayProcess) -> None:
    record = refusing.new_key_record("viewer", "revoked-in-use")
    refusing.revoke_key(record["id"])
    run = uuid.uuid4().hex[:8]
    statuses: list[int] = []
    for n in range(50):  # a fresh gateway cache never held the key: refused at once
        statuses.append(_list(refusing, f"{run}-revoked-{n}", f"Bearer {record['key']}").status_code)
        if statuses[-1] == 401:
            break
        time.sleep(0.1)
    assert statuses[-1] == 401, statuses
    [event] = _events(refusing, [f"{run}-revoked-{len(statuses) - 1}"])
    assert event["outcome"] == "unauthenticated" and event["decision"] == "deny"
    assert event["reasons"] == ["this API key was revoked", f"key id {record['id']}"]


def test_a_principal_out_of_tokens_is_audited_once_per_window(refusing: GatewayProcess) -> None:
    key = refusing.new_key("viewer", "hasty")
    url = refusing.url + "/mcp"
    run = uuid.uuid4().hex[:8]
    ids = [f"{run}-hasty-{n}" for n in range(5)]
    statuses = [_list(refusing, request_id, f"Bearer {key}").status_code for request_id in ids]
    assert statuses == [200, 200, 429, 429, 429]
    events = _events(refusing, ids)
    # Two listings (decided and audited as ever), then the first refusal; the others counted.
    assert [(e["request_id"], e["action"], e["outcome"]) for e in events] == [
        (ids[0], "tools/list", "ok"),
        (ids[1], "tools/list", "ok"),
        (ids[2], "tools/list", "rate_limited"),
    ]
    refusal = events[2]
    assert refusal["subject"] == "hasty" and refusal["decision"] == "deny"
    assert refusal["reasons"][0].startswith("rate limit exceeded (limit for hasty: ")
    events = _until_events(refusing, ids, 4)
    assert len(events) == 4, events
    assert events[3]["request_id"] == ids[4] and events[3]["outcome"] == "rate_limited"
    counted = COUNTED.fullmatch(events[3]["reasons"][-1])
    assert counted is not None and counted[1] == "2", events[3]["reasons"]
    # Another principal is its own source, and its own bucket.
    assert _modern(url, "tools/list", {}, refusing.key("viewer")).status_code == 200
