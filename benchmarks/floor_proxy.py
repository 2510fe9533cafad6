"""The floor under the gateway's added latency: its own I/O, none of its logic.

A bare forwarder built from the gateway's per-call I/O parts and nothing else: it
reads the client's HTTP request (uvloop and httptools, as uvicorn does), forwards
`tools/call` and `tools/list` to the upstream over the gateway's own 2026-07-28
client (`DirectHTTPClient` on the keep-alive pool), commits one audit event per call
with the gateway's `PostgresAuditWriter` (same durability, same group commit, in the
gateway's embedded PostgreSQL), and answers in one write. No ASGI, authentication,
`Origin` check, policy, rate limit, metrics or argument validation.

`benchmarks/gateway.py --floor` runs it beside the gateway in the same run, so the
gateway's added latency and CPU can be read against what the extra hop and the audit
commit cost by themselves on the same machine at the same moment.

Both eras are served as the gateway serves them: a 2026-07-28 client's requests go
out as they are; a 2025-11-25 client gets a session from `initialize` here, and its
calls go to the upstream over 2026-07-28.

Usage (from the repository root): python -m benchmarks.floor_proxy --port P --upstream URL --dsn DSN
       [--durability flush|commit]
"""

# not a benchmark: a helper that `benchmarks/gateway.py --floor` starts (`make bench` skips it)

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
from http import HTTPStatus
from typing import Any

import httptools
import orjson
import uvloop
from mcp.shared.exceptions import MCPError
from psycopg_pool import AsyncConnectionPool

from gateway.audit import AuditEvent, PostgresAuditWriter, digest_arguments
from gateway.auth import Principal
from gateway.upstreams.direct import DirectHTTPClient

PRINCIPAL = Principal(subject="floor", tenant="bench", roles=("admin",), scopes=(), auth_method="api_key")
HANDSHAKE_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"


class Forwarder:
    """What the floor does per request, shared by every connection."""

    def __init__(self, upstream: DirectHTTPClient, audit: PostgresAuditWriter) -> None:
        self.upstream = upstream
        self.audit = audit

    async def answer(self, message: dict[str, Any]) -> tuple[bytes, list[bytes]]:
        """The JSON-RPC answer to one request, and extra header lines."""
        method = message.get("method")
        params = message.get("params") or {}
        headers: list[bytes] = []
        try:
            if method == "server/discover":
                result: dict[str, Any] = {
                    "supportedVersions": [MODERN_VERSION],
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "floor", "version": "1"},
                }
            elif method == "initialize":
                headers.append(b"mcp-session-id: " + secrets.token_hex(16).encode())
                result = {
                    "protocolVersion": HANDSHAKE_VERSION,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "floor", "version": "1"},
                }
            elif method == "tools/list":
                result = await self.upstream.request("tools/list", {})
            elif method == "tools/call":
                result = await self._call(params)
            else:
                raise MCPError(code=-32601, message=f"the floor proxy does not serve {method!r}")
        except MCPError as exc:
            error = {"code": exc.error.code, "message": exc.error.message}
            return orjson.dumps({"jsonrpc": "2.0", "id": message.get("id"), "error": error}), headers
        if "_meta" in params:  # a 2026-07-28 request
            result = {**result, "resultType": "complete"}
        return orjson.dumps({"jsonrpc": "2.0", "id": message.get("id"), "result": result}), headers

    async def _call(self, params: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        arguments = params.get("arguments") or {}
        outgoing = {"name": params.get("name"), "arguments": arguments}
        outcome = "ok"
        try:
            return await self.upstream.request("tools/call", outgoing)
        except MCPError:
            outcome = "upstream_error"
            raise
        finally:
            await self.audit.write(
                AuditEvent(
                    action="tools/call",
                    decision="allow",
                    outcome=outcome,
                    latency_ms=(loop.time() - started) * 1000,
                    principal=PRINCIPAL,
                    upstream="echo",
                    tool=str(params.get("name")),
                    argument_digest=digest_arguments(arguments),
                )
            )


class Connection(asyncio.Protocol):
    """One client connection: HTTP/1.1 keep-alive, one request at a time."""

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []
        self.handling: asyncio.Future[None] | None = None  # the request being answered

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._send(400, b'{"error": "malformed HTTP request"}', [])
            if self.transport is not None:
                self.transport.close()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body, self.body = b"".join(self.body), []
        self.handling = asyncio.ensure_future(self._handle(body))

    async def _handle(self, body: bytes) -> None:
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            self._send(400, b'{"error": "the body is not JSON"}', [])
            return
        if not isinstance(message, dict):
            self._send(400, b'{"error": "send one JSON-RPC message"}', [])
            return
        if "id" not in message:  # a notification
            self._send(202, b"", [])
            return
        payload, headers = await self.forwarder.answer(message)
        self._send(200, payload, headers)

    def _send(self, status: int, payload: bytes, headers: list[bytes]) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        status_line = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        head = [f"{status_line}content-type: application/json\r\n".encode()]
        head += [line + b"\r\n" for line in headers]
        head.append(f"content-length: {len(payload)}\r\n\r\n".encode())
        self.transport.writelines([b"".join(head), payload])


async def serve(port: int, upstream_url: str, dsn: str, durability: str) -> None:
    upstream = DirectHTTPClient(upstream_url, {}, timeout=30.0)
    async with AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False) as pool:
        audit = PostgresAuditWriter(pool, durability=durability)  # type: ignore[arg-type]
        forwarder = Forwarder(upstream, audit)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Connection(forwarder), "127.0.0.1", port)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        try:
            await stop.wait()
        finally:
            server.close()
            await audit.close()
            await upstream.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the upstream's MCP URL (2026-07-28)")
    parser.add_argument("--dsn", required=True, help="PostgreSQL with the gateway's audit table")
    parser.add_argument("--durability", choices=["flush", "commit"], default="flush")
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.upstream, args.dsn, args.durability))


if __name__ == "__main__":
    main()
