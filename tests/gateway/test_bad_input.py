"""Bad input through the gateway: each gets the right status or error, nothing bad runs upstream,
and the gateway keeps serving."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from mcp.shared.exceptions import MCPError

from bastion.db.embedded import EmbeddedPostgres
from bastion.home import Home
from tests.gateway.conftest import GatewayProcess, counter_gateway
from tests.gateway.test_gateway import ENVELOPE, MODERN, _client, _modern, _result
from tests.gateway.test_sessions import Session

HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": MODERN,
    "mcp-method": "tools/call",
    "mcp-name": "counter_echo",
}


def _post(gateway: GatewayProcess, body: bytes, **extra: str) -> httpx.Response:
    headers = {**HEADERS, "authorization": f"Bearer {gateway.key('admin')}", **extra}
    return httpx.post(gateway.url + "/mcp", headers=headers, content=body, timeout=30)


def _call(arguments: Any, **envelope: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "counter_echo", "arguments": arguments, "_meta": ENVELOPE},
        **envelope,
    }


def _audit_rows(gateway: GatewayProcess, request_id: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(EmbeddedPostgres(Home(gateway.home)).dsn()) as conn:
        return conn.execute(
            "SELECT tool, decision, outcome, reasons FROM gateway.audit_events WHERE request_id = %s",
            (request_id,),
        ).fetchall()


def _still_serving(gateway: GatewayProcess) -> None:
    response = _modern(
        gateway.url + "/mcp",
        "tools/call",
        {"name": "counter_echo", "arguments": {"text": "still here"}},
        gateway.key("admin"),
        "counter_echo",
    )
    assert _result(response)["result"]["content"][0]["text"] == "still here"


def test_malformed_json_rpc_gets_a_json_rpc_error(gateway: GatewayProcess) -> None:
    before = gateway.counted()
    truncated = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", '
    for era in ({}, {"mcp-protocol-version": "2025-11-25"}):  # handshake-era: before any session
        not_json = _post(gateway, truncated, **era)
        assert not_json.status_code == 400
        error = _result(not_json)["error"]
        # what was wrong and where, not just "Parse error"
        assert error["code"] == -32700 and "not JSON" in error["message"] and "line 1" in error["message"]
    # JSON that orjson refuses but the SDK's parser takes is the SDK's to judge, not a parse error
    lenient = _post(gateway, json.dumps(_call({"text": "x"})).replace('"x"', "NaN").encode())
    assert _result(lenient)["result"]["isError"] is True, lenient.text  # `text` must be a string
    for envelope in ({"jsonrpc": "1.0"}, {"id": True}, {"id": None}, {"id": {"nested": 1}}):
        response = _post(gateway, json.dumps(_call({"text": "x"}, **envelope)).encode())
        assert response.status_code == 400, (envelope, response.text)
        error = _result(response)["error"]
        assert error["code"] == -32600 and error["message"], envelope
    for arguments in ([1, 2], "text"):
        response = _post(gateway, json.dumps(_call(arguments)).encode())
        assert _result(response)["error"]["code"] == -32602, (arguments, response.text)
    not_an_object = _post(gateway, b"[1, 2, 3]")
    assert not_an_object.status_code == 400 and _result(not_an_object)["error"]["code"] == -32600
    assert gateway.counted() == before
    _still_serving(gateway)


def test_a_routing_header_sent_twice_is_refused(gateway: GatewayProcess) -> None:
    before = gateway.counted()
    # The copy a first-copy reader sees names another tool than the body's.
    headers = [
        ("mcp-name", "counter_calls"),
        *HEADERS.items(),
        ("authorization", f"Bearer {gateway.key('admin')}"),
    ]
    response = httpx.post(
        gateway.url + "/mcp", headers=headers, content=json.dumps(_call({"text": "x"})), timeout=30
    )
    assert response.status_code == 400
    error = _result(response)["error"]
    assert "mcp-name" in error["message"].lower() and "more than once" in error["message"]
    assert error["code"] == -32020 and _result(response)["id"] == 1
    # On a session too: the last copy of the version would pick the 2026-07-28 view for a
    # call the SDK (reading the first) serves on the handshake session.
    session = Session(gateway)
    try:
        for twice in (("mcp-protocol-version", MODERN), ("mcp-session-id", "another")):
            lines = [*session.headers.items(), twice]
            body = {
                "jsonrpc": "2.0",
                "id": 5,
                "method": "tools/call",
                "params": {"name": "counter_echo", "arguments": {"text": "x"}},
            }
            refused = session.http.post("/mcp", headers=lines, content=json.dumps(body))
            assert refused.status_code == 400, (twice, refused.text)
            assert f"{twice[0]} header appears more than once" in _result(refused)["error"]["message"]
    finally:
        session.close()
    assert gateway.counted() == before
    _still_serving(gateway)


@pytest.mark.parametrize(
    ("header", "value", "status"),
    [
        ("content-type", "text/plain", 415),  # the body must be declared JSON
        ("content-type", "application/jsonfoo", 415),  # ... exactly, not by prefix
        ("content-type", "", 415),
        ("accept", "application/json", 406),  # answers may come as SSE: the client must take both
        ("accept", "text/event-stream", 406),
    ],
)
def test_requests_the_transport_refuses_are_refused_on_every_path(
    gateway: GatewayProcess, header: str, value: str, status: int
) -> None:
    before = gateway.counted()
    response = _post(gateway, json.dumps(_call({"text": "x"})).encode(), **{header: value})
    assert response.status_code == status, response.text
    if status == 415:  # said in JSON-RPC, with what to send
        assert "Content-Type must be application/json" in _result(response)["error"]["message"]
    assert gateway.counted() == before
    _still_serving(gateway)


def test_a_foreign_host_and_an_oversized_chunked_body_are_refused(gateway: GatewayProcess) -> None:
    before = gateway.counted()
    body = json.dumps(_call({"text": "x"})).encode()
    # DNS rebinding: a page on another name reaching the loopback gateway through a browser
    rebound = _post(gateway, body, host="attacker.example:8080")
    assert rebound.status_code == 421
    assert "Host not allowed" in _result(rebound)["error"]["message"]
    # Values that are no authority or origin at all are refused the same way, not a 500.
    for host in ("[x]", "[::1"):
        assert _post(gateway, body, host=host).status_code == 421, host
    for origin in ("http://[::1", "http://[x]"):
        refused = _post(gateway, body, origin=origin)
        assert refused.status_code == 403 and "Origin" in refused.text, origin

    # No Content-Length to check up front: the body is counted as it arrives.
    def chunks() -> Iterator[bytes]:
        for _ in range(5):
            yield b" " * (1024 * 1024)

    headers = {**HEADERS, "authorization": f"Bearer {gateway.key('admin')}"}
    huge = httpx.post(gateway.url + "/mcp", headers=headers, content=chunks(), timeout=30)
    assert huge.status_code == 413
    assert "request body over 4,194,304 bytes" in _result(huge)["error"]["message"]
    assert "the file's path on the server" in _result(huge)["error"]["message"]
    assert gateway.counted() == before
    _still_serving(gateway)


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_an_unknown_tool_is_named_and_audited(gateway: GatewayProcess, mode: str) -> None:
    async with _client(gateway.url + "/mcp", gateway.key("admin"), mode) as client:
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("counter_nope", {"text": "x"})
    assert unknown.value.error.code == -32602
    assert "counter_nope" in unknown.value.error.message and "tools/list" in unknown.value.error.message
    rid = f"unknown-{mode}"
    response = _post(
        gateway,
        json.dumps({**_call({}), "params": {"name": "counter_nope", "_meta": ENVELOPE}}).encode(),
        **{"mcp-name": "counter_nope", "x-request-id": rid},
    )
    assert _result(response)["error"]["code"] == -32602
    assert _audit_rows(gateway, rid) == [("counter_nope", "error", "invalid_request", ["unknown tool"])]


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"text": 5}, "'text'"),  # wrong type
        ({}, '"text" is a required property'),  # missing
    ],
)
def test_arguments_failing_the_schema_never_reach_the_upstream(
    gateway: GatewayProcess, arguments: dict[str, Any], named: str
) -> None:
    before = gateway.counted()
    rid = f"schema-{len(arguments)}"
    response = _post(gateway, json.dumps(_call(arguments)).encode(), **{"x-request-id": rid})
    assert response.status_code == 200
    result = _result(response)["result"]
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert "counter_echo" in text and named in text and "inputSchema" in text
    assert gateway.counted() == before
    [(tool, decision, outcome, reasons)] = _audit_rows(gateway, rid)
    assert (tool, decision, outcome) == ("echo", "allow", "invalid_request")
    assert "input schema" in reasons[0]
    _still_serving(gateway)


def test_a_misnamed_argument_to_a_built_in_tool_is_refused_naming_those_it_takes(
    gateway: GatewayProcess,
) -> None:
    listed = _result(_post(gateway, json.dumps(_list()).encode(), **{"mcp-method": "tools/list"}))
    schemas = {t["name"]: t["inputSchema"] for t in listed["result"]["tools"]}
    # Built-in tools publish closed schemas; an external upstream's stay as it wrote them.
    assert schemas["system_version"]["additionalProperties"] is False
    assert "additionalProperties" not in schemas["counter_echo"]
    body = _call({"verbose": True})
    body["params"]["name"] = "system_version"
    result = _result(_post(gateway, json.dumps(body).encode(), **{"mcp-name": "system_version"}))["result"]
    assert result["isError"] is True
    assert result["content"][0]["text"] == (
        "invalid arguments for tool 'system_version': 'verbose' is not an argument of this tool; "
        "it takes none; see its inputSchema in tools/list"
    )
    _still_serving(gateway)


def _list() -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": ENVELOPE}}


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_an_upstream_tool_error_names_the_tool_as_its_client_calls_it(
    gateway: GatewayProcess, mode: str
) -> None:
    expected = "Error executing tool counter_refuse: no dataset named 'sales'"
    body = _call({"reason": "no dataset named 'sales'"})
    body["params"]["name"] = "counter_refuse"
    fast = _result(_post(gateway, json.dumps(body).encode(), **{"mcp-name": "counter_refuse"}))["result"]
    assert fast["isError"] is True and fast["content"][0]["text"] == expected
    async with _client(gateway.url + "/mcp", gateway.key("admin"), mode) as client:
        plain = await client.call_tool("counter_refuse", {"reason": "no dataset named 'sales'"})
        # A progress callback sends a progress token: the call takes the SDK path.
        streamed = await client.call_tool(
            "counter_refuse", {"reason": "no dataset named 'sales'"}, progress_callback=_ignore_progress
        )
    for result in (plain, streamed):
        assert result.is_error and result.content[0].text == expected  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_schema_errors_are_the_same_on_the_sdk_path(gateway: GatewayProcess, mode: str) -> None:
    before = gateway.counted()
    async with _client(gateway.url + "/mcp", gateway.key("admin"), mode) as client:
        # A progress callback sends a progress token: the call takes the SDK path.
        result = await client.call_tool("counter_echo", {"text": 5}, progress_callback=_ignore_progress)
    assert result.is_error
    assert "'text'" in result.content[0].text  # type: ignore[union-attr]
    assert gateway.counted() == before


async def _ignore_progress(progress: float, total: float | None, message: str | None) -> None:
    return None


def test_a_revoked_key_gets_401_and_the_gateway_keeps_serving(gateway: GatewayProcess) -> None:
    record = gateway.new_key_record("admin", "about-to-go")
    key = record["key"]
    assert (
        _post(gateway, json.dumps(_call({"text": "ok"})).encode(), authorization=f"Bearer {key}").status_code
        == 200
    )
    gateway.revoke_key(record["id"])
    statuses = []
    for _ in range(50):  # a revocation reaches the gateway within its key cache TTL (1 s)
        response = _post(gateway, json.dumps(_call({"text": "no"})).encode(), authorization=f"Bearer {key}")
        statuses.append(response.status_code)
        if response.status_code == 401:
            break
        time.sleep(0.1)
    assert statuses[-1] == 401, statuses
    assert "revoked" in response.headers["www-authenticate"]
    assert "revoked" in response.json()["error_description"]
    _still_serving(gateway)


def test_whitespace_around_header_values_is_not_part_of_them(gateway: GatewayProcess) -> None:
    # RFC 9110 5.5: optional whitespace around a field value is not part of it. HTTP
    # clients refuse to send such values, so the request is written by hand.
    body = json.dumps(_call({"text": "padded"})).encode()
    head = (
        "POST /mcp HTTP/1.1\r\n"
        f"Host: {httpx.URL(gateway.url).netloc.decode()}\r\n"
        "Content-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\n"
        "Mcp-Method: tools/call\r\n"
        "Mcp-Name:  counter_echo\t\r\n"
        f"MCP-Protocol-Version:\t{MODERN} \r\n"
        f"Authorization: Bearer {gateway.key('admin')}  \r\n"
        "X-Request-Id: padded-1 \r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    url = httpx.URL(gateway.url)
    with socket.create_connection((url.host, url.port), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 200"), answer[:300]
    reply = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert reply["result"]["content"][0]["text"] == "padded"
    assert _audit_rows(gateway, "padded-1")[0][2] == "ok"


def test_readiness_details_and_metrics_are_for_operators_only(gateway: GatewayProcess) -> None:
    """A web page that rebinds its own name to 127.0.0.1 reaches the gateway from loopback,
    but names itself in Host: it gets the readiness status, not the errors and upstreams
    behind it, and no metrics."""
    operator = httpx.get(gateway.url + "/readyz", timeout=10).json()
    assert {"ready", "status", "checks", "policy", "upstreams"} <= set(operator)
    stranger = httpx.get(gateway.url + "/readyz", headers={"host": "attacker.example"}, timeout=10)
    assert stranger.status_code == 200 and stranger.json() == {"ready": True, "status": operator["status"]}
    metrics = httpx.get(gateway.url + "/metrics", headers={"host": "attacker.example"}, timeout=10)
    assert metrics.status_code == 401 and "www-authenticate" in metrics.headers
    assert "bastion_" not in metrics.text
    assert httpx.get(gateway.url + "/metrics", headers={"host": "[x]"}, timeout=10).status_code == 401
    assert "bastion_gateway_calls_total" in httpx.get(gateway.url + "/metrics", timeout=10).text


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("era", ["fast", "sdk"])
def test_arguments_too_deep_to_audit_are_refused_clearly_and_audited(
    gateway: GatewayProcess, era: str
) -> None:
    """JSON nested 300 deep parses, but cannot be digested for the audit event: the call is
    refused as the client's mistake (-32602, saying what to change), never run, and audited."""
    before = gateway.counted()
    rid = f"deep-{era}"
    body = _call({"text": "x", "extra": _nested(300)})
    if era == "sdk":
        body["params"]["_meta"] = {**ENVELOPE, "progressToken": 1}
    response = _post(gateway, json.dumps(body).encode(), **{"x-request-id": rid})
    error = _result(response)["error"]
    assert error["code"] == -32602, response.text
    assert "'counter_echo'" in error["message"] and "255 levels" in error["message"]
    [(tool, decision, outcome, reasons)] = _audit_rows(gateway, rid)
    assert (tool, decision, outcome) == ("echo", "error", "invalid_request")
    assert reasons[0].startswith("arguments refused")
    assert gateway.counted() == before
    _still_serving(gateway)


@pytest.mark.parametrize(
    ("method", "params", "target", "reason"),
    [
        ("prompts/get", {"name": "counter_nope"}, "counter_nope", "unknown prompt"),
        ("resources/read", {"uri": "file:///etc/passwd"}, "file:///etc/passwd", "unknown resource"),
        ("resources/subscribe", {"uri": "file:///etc/passwd"}, "file:///etc/passwd", "unknown resource"),
    ],
)
def test_unknown_prompts_and_resources_are_audited_like_unknown_tools(
    gateway: GatewayProcess, method: str, params: dict[str, Any], target: str, reason: str
) -> None:
    """Probing for names leaves a trace: every refusal is an audit event."""
    session = Session(gateway)  # a handshake-era session: subscriptions are of that era
    try:
        rid = f"probe-{method}"
        session.headers["x-request-id"] = rid
        response = session.post(method, params)
    finally:
        session.close()
    assert _result(response)["error"]["code"] == -32602, response.text
    assert _audit_rows(gateway, rid) == [(target, "error", "invalid_request", [reason])]


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"io.modelcontextprotocol/clientCapabilities": 5}, "clientCapabilities"),
        ({"io.modelcontextprotocol/clientCapabilities": {"sampling": 5}}, "clientCapabilities']['sampling']"),
        ({"io.modelcontextprotocol/clientInfo": "bogus"}, "clientInfo"),
        ({"io.modelcontextprotocol/logLevel": "loud"}, "logLevel"),
    ],
)
def test_a_malformed_2026_envelope_is_refused_naming_the_key_on_every_path(
    gateway: GatewayProcess, bad: dict[str, Any], named: str
) -> None:
    before = gateway.counted()
    for extra in ({}, {"progressToken": 1}):  # the fast path, and the SDK's
        body = _call({"text": "x"})
        body["params"]["_meta"] = {**ENVELOPE, **bad, **extra}
        response = _post(gateway, json.dumps(body).encode())
        assert response.status_code == 400, response.text
        error = _result(response)["error"]
        assert error["code"] == -32602 and named in error["message"] and "send" in error["message"], error
    assert gateway.counted() == before
    _still_serving(gateway)


def test_an_unsupported_protocol_version_is_refused_on_every_path(gateway: GatewayProcess) -> None:
    """Even on a live 2025-11-25 session, whose tool calls the gateway answers itself."""
    before = gateway.counted()
    session = Session(gateway)
    try:
        session.headers["mcp-protocol-version"] = "2099-01-01"
        for method, params in (
            ("tools/call", {"name": "counter_echo", "arguments": {"text": "x"}}),
            ("tools/list", {}),
        ):
            response = session.post(method, params)
            assert response.status_code == 400, response.text
            error = _result(response)["error"]
            assert (
                error["code"] == -32022
                and "'2099-01-01'" in error["message"]
                and "2025-11-25" in error["message"]
            )
            assert error["data"]["requested"] == "2099-01-01"
    finally:
        session.close()
    assert gateway.counted() == before


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"id": None}, '"id" must be a string or an integer, got null'),
        ({"id": True}, '"id" must be a string or an integer, got true'),
        ({"id": 1.5}, '"id" must be a string or an integer, got 1.5'),
        ({"id": {"n": 1}}, '"id" must be a string or an integer'),
        ({"jsonrpc": "1.0"}, '"jsonrpc" must be "2.0", got "1.0"'),
        ({"params": [1]}, '"params" must be an object'),
        ({"method": 5}, '"method" must be a string'),
    ],
)
def test_an_invalid_request_on_a_session_is_answered_naming_the_member(
    gateway: GatewayProcess, change: dict[str, Any], named: str
) -> None:
    """Never a silent 202 (a request with a bad id taken for a notification) nor a dump."""
    before = gateway.counted()
    session = Session(gateway)
    try:
        body = {
            "jsonrpc": "2.0",
            "id": 9,
            "method": "tools/call",
            "params": {"name": "counter_echo", "arguments": {"text": "x"}},
        }
        response = session.http.post("/mcp", headers=session.headers, content=json.dumps({**body, **change}))
        batch = session.http.post("/mcp", headers=session.headers, content=json.dumps([body]))
    finally:
        session.close()
    assert response.status_code == 400, response.text
    error = _result(response)["error"]
    assert error["code"] == -32600 and named in error["message"], error
    assert batch.status_code == 400 and "batches are not supported" in _result(batch)["error"]["message"]
    assert gateway.counted() == before


def test_a_2026_request_without_its_version_header_is_told_to_send_it(gateway: GatewayProcess) -> None:
    response = _post(gateway, json.dumps(_call({"text": "x"})).encode(), **{"mcp-protocol-version": ""})
    assert response.status_code == 400, response.text
    error = _result(response)["error"]
    assert error["code"] == -32600 and "MCP-Protocol-Version: 2026-07-28" in error["message"], error


def test_every_mcp_answer_names_its_request_and_the_audit_event_the_same(gateway: GatewayProcess) -> None:
    answered = _post(gateway, json.dumps(_call({"text": "named"})).encode())  # the fast path
    rid = answered.headers["x-request-id"]
    assert len(rid) == 32 and [row[:3] for row in _audit_rows(gateway, rid)] == [("echo", "allow", "ok")]
    kept = _post(gateway, json.dumps(_call({"text": "mine"})).encode(), **{"x-request-id": "client-chosen-1"})
    assert kept.headers["x-request-id"] == "client-chosen-1"
    body = _call({"text": "streamed"})
    body["params"]["_meta"] = {**ENVELOPE, "progressToken": 1}  # the SDK path
    assert len(_post(gateway, json.dumps(body).encode()).headers["x-request-id"]) == 32
    refused = httpx.post(gateway.url + "/mcp", headers=HEADERS, content=json.dumps(_call({})), timeout=30)
    assert refused.status_code == 401 and refused.headers["x-request-id"]


def test_an_oversized_body_ends_the_connection_instead_of_being_read(gateway: GatewayProcess) -> None:
    """After the 413 nothing more of the body is taken, with or without a key."""
    url = httpx.URL(gateway.url)
    for auth in ("", f"Authorization: Bearer {gateway.key('admin')}\r\n"):
        head = (
            f"POST /mcp HTTP/1.1\r\nHost: {url.netloc.decode()}\r\n{auth}"
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            "Content-Length: 10000000000\r\n\r\n"
        )
        with socket.create_connection((url.host, url.port), timeout=10) as sock:
            sock.sendall(head.encode() + b"{" * 1024)
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
            pushed = 0
            with pytest.raises(OSError):  # the gateway closed the connection: the client cannot go on
                while pushed < 200 * 1024 * 1024:  # a client that keeps pushing its body
                    sock.sendall(b" " * 65536)
                    pushed += 65536
                    sock.settimeout(0.01)
                    with contextlib.suppress(TimeoutError):
                        if not sock.recv(65536):
                            raise ConnectionResetError("closed")


@pytest.fixture(scope="module")
def impatient(shared_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway that gives each request one second to arrive whole."""
    with counter_gateway(shared_home, tmp_path_factory, "impatient", "request_read_timeout = 1") as process:
        yield process


def _until_closed(sock: socket.socket) -> bytes:
    """What the gateway sends until it closes the connection (the socket's timeout bounds it)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_a_request_that_stalls_gets_408_and_nothing_runs(impatient: GatewayProcess) -> None:
    """A client that stops halfway through its request does not hold the connection: the
    gateway answers 408 and closes it, and the cut-off call never reaches the upstream,
    not even when what arrived is a whole call (a body shorter than its Content-Length)."""
    before = impatient.counted()
    url = httpx.URL(impatient.url)
    body = json.dumps(_call({"text": "cut off"})).encode()
    for sent, length in ((body[: len(body) // 2], len(body)), (body, len(body) + 10)):
        headers = {
            **HEADERS,
            "host": url.netloc.decode(),
            "authorization": f"Bearer {impatient.key('admin')}",
            "content-length": str(length),
        }
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        with socket.create_connection((url.host, url.port), timeout=10) as sock:
            sock.sendall(f"POST /mcp HTTP/1.1\r\n{head}\r\n".encode() + sent)
            answer = _until_closed(sock)
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 408 Request Timeout", answer[:200]
        error = json.loads(rest.partition(b"\r\n\r\n")[2])["error"]
        assert error["message"] == (
            "the request did not arrive whole within 1 s; send each request's head and body at once"
        )
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        assert _until_closed(sock) == b""  # a connection that says nothing is closed, unanswered
    assert impatient.counted() == before
    _still_serving(impatient)


def test_an_audit_event_is_timed_when_its_call_arrived(gateway: GatewayProcess) -> None:
    """A call that takes a second is recorded at its arrival, not at its answer."""
    gateway.key("admin")  # made beforehand: creating it takes a moment of its own
    sent = datetime.now(UTC)
    body = _call({"seconds": 1.0})
    body["params"]["name"] = "counter_hold"
    answered = _post(
        gateway, json.dumps(body).encode(), **{"mcp-name": "counter_hold", "x-request-id": "timed-1"}
    )
    assert _result(answered)["result"]["content"][0]["text"] == "held"
    with psycopg.connect(EmbeddedPostgres(Home(gateway.home)).dsn()) as conn:
        [(when, latency)] = conn.execute(
            "SELECT time, latency_ms FROM gateway.audit_events WHERE request_id = 'timed-1'"
        ).fetchall()
    assert latency >= 1000
    assert abs((when - sent).total_seconds()) < 0.5, (when, sent)


@pytest.mark.parametrize(
    "method", ["tools/list", "prompts/list", "resources/list", "resources/templates/list"]
)
def test_a_list_cursor_the_gateway_never_gave_is_refused(gateway: GatewayProcess, method: str) -> None:
    session = Session(gateway)
    try:
        response = session.post(method, {"cursor": "bogus"})
        whole = session.post(method, {})
    finally:
        session.close()
    error = _result(response)["error"]
    assert error["code"] == -32602 and "'bogus'" in error["message"] and "without one" in error["message"]
    assert "nextCursor" not in _result(whole)["result"]
