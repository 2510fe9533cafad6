"""How the direct path reads an upstream's HTTP answer into the JSON-RPC answer to its request."""

from __future__ import annotations

import pytest
from mcp.shared.exceptions import MCPError

from gateway.upstreams.direct import DirectHTTPClient

read = DirectHTTPClient._message  # pyright: ignore[reportPrivateUsage]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_an_event_stream_is_read_whatever_its_line_ends(newline: bytes) -> None:
    """A log notification, then the answer: sse-starlette ends lines with CRLF."""
    events = [
        b'event: message', b'data: {"jsonrpc": "2.0", "method": "notifications/message", "params": {}}', b"",
        b"event: message", b'data: {"jsonrpc": "2.0", "id": 4, "result": {"ok": true}}', b"", b"",
    ]  # fmt: skip
    body = newline.join(events)
    assert read(200, "text/event-stream", body, 4) == {"jsonrpc": "2.0", "id": 4, "result": {"ok": True}}


def test_an_answer_to_another_request_is_refused_not_taken() -> None:
    with pytest.raises(MCPError, match="upstream answered request 3, not 4"):
        read(200, "application/json", b'{"jsonrpc": "2.0", "id": 3, "result": {}}', 4)
    # An error the upstream could not tie to an id is about this request: it passes through.
    refused = read(400, "application/json", b'{"jsonrpc": "2.0", "id": null, "error": {"code": -32600}}', 4)
    assert refused["error"]["code"] == -32600


def test_an_event_that_is_not_json_is_named() -> None:
    with pytest.raises(MCPError, match="upstream sent an SSE event that is not JSON"):
        read(200, "text/event-stream", b"data: {oops\n\n", 4)
