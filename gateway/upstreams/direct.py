"""A lean client for the hot path to HTTP upstreams that speak 2026-07-28.

The 2026-07-28 revision makes each request self-contained: no session, one POST,
one JSON-RPC answer. For an upstream that supports it, the gateway sends plain
`tools/call`, `resources/read` and `prompts/get` requests (those that need no
progress stream) over the gateway's own pooled keep-alive HTTP/1.1 client
(`keepalive.py`) and parses the answer with orjson, instead of routing them through
the SDK's client session. Everything else, and every upstream that only speaks the
handshake era, stays on the SDK connection.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Mapping
from typing import Any, cast

import orjson
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import X_MCP_HEADER_KEY, encode_header_value
from mcp_types import SERVER_INFO_META_KEY
from mcp_types.version import LATEST_MODERN_VERSION

from gateway.upstreams.keepalive import KeepAliveClient, UpstreamHTTPError

__all__ = ["DirectHTTPClient", "strip_upstream_envelope", "supports_modern"]

logger = logging.getLogger(__name__)

CLIENT_INFO = {"name": "bastion-gateway", "version": "1"}
_NAMED = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


def _uses_param_headers(schema: Any) -> bool:
    """True if a tool schema maps arguments to headers (`x-mcp-header`): the SDK handles those."""
    return X_MCP_HEADER_KEY.encode() in orjson.dumps(schema) if schema else False


def strip_upstream_envelope(result: dict[str, Any]) -> None:
    """Drop the envelope fields of the upstream's hop; the gateway adds its own for its clients.

    An `input_required` result type stays: the client must see it.
    """
    if result.get("resultType") == "complete":
        del result["resultType"]
    meta = result.get("_meta")
    if isinstance(meta, dict):
        meta.pop(SERVER_INFO_META_KEY, None)
        if not meta:
            del result["_meta"]


def supports_modern(discover_result: Mapping[str, Any]) -> bool:
    return LATEST_MODERN_VERSION in (discover_result.get("supportedVersions") or [])


class DirectHTTPClient:
    """POST one modern-era request, return its raw result."""

    def __init__(self, url: str, headers: Mapping[str, str], *, timeout: float) -> None:
        self.url = url
        self._ids = itertools.count(1)
        self._headers = {
            **headers,
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": LATEST_MODERN_VERSION,
        }
        self._timeout = timeout
        self._http: KeepAliveClient | None = None

    def _client(self) -> KeepAliveClient:
        if self._http is None:  # created inside the running loop
            self._http = KeepAliveClient(self.url, self._headers, read_timeout=self._timeout)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def discover(self) -> dict[str, Any] | None:
        """`server/discover`, or None when the upstream does not speak 2026-07-28."""
        try:
            return await self.request("server/discover", {})
        except (MCPError, UpstreamHTTPError, ValueError):
            return None

    def eligible(self, method: str, tool_schema: Any = None) -> bool:
        return method in _NAMED and not _uses_param_headers(tool_schema)

    async def request(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        meta = dict(params.get("_meta") or {})
        meta["io.modelcontextprotocol/protocolVersion"] = LATEST_MODERN_VERSION
        meta.setdefault("io.modelcontextprotocol/clientCapabilities", {})
        meta.setdefault("io.modelcontextprotocol/clientInfo", CLIENT_INFO)
        rid = next(self._ids)
        body = orjson.dumps(
            {"jsonrpc": "2.0", "id": rid, "method": method, "params": {**params, "_meta": meta}}
        )
        headers = {"mcp-method": method}
        key = _NAMED.get(method)
        if key is not None and isinstance(params.get(key), str):
            headers["mcp-name"] = encode_header_value(params[key])
        try:
            answer = await self._client().post(body, headers, functools.partial(_holds_answer, rid=rid))
        except UpstreamHTTPError as exc:
            raise MCPError(code=-32000, message=f"HTTP request failed: {exc}") from None
        message = self._message(answer.status, answer.content_type, answer.body, rid)
        if "error" in message:
            error = message["error"]
            if not isinstance(error, dict):
                raise MCPError(code=-32603, message=f"upstream answered a malformed error: {error!r:.200}")
            code = error.get("code")
            raise MCPError(
                code=code if type(code) is int else -32603,
                message=str(error.get("message", "")),
                data=error.get("data"),
            )
        result = message.get("result")
        if not isinstance(result, dict):
            raise MCPError(code=-32603, message="upstream answered without a result object")
        strip_upstream_envelope(result)
        return result

    @staticmethod
    def _message(status: int, content_type: str, content: bytes, rid: int) -> dict[str, Any]:
        if content_type.startswith("text/event-stream"):
            message = _sse_answer(content, rid)
            if message is None:
                ended = f"upstream stream ended without an answer (HTTP {status})"
                raise MCPError(code=-32603, message=ended)
            return message
        try:
            message = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise MCPError(code=-32603, message=f"upstream answered HTTP {status} without JSON-RPC") from None
        if not isinstance(message, dict):
            raise MCPError(code=-32603, message="upstream answered with a non-object")
        # An error with a null id is about this request (the upstream could not read its id).
        if message.get("id") != rid and not ("error" in message and message.get("id") is None):
            raise MCPError(
                code=-32603, message=f"upstream answered request {message.get('id')!r:.40}, not {rid}"
            )
        return message


def _sse_answer(content: bytes, rid: int, *, complete_only: bool = False) -> dict[str, Any] | None:
    """The answer to request `rid` in an SSE body, or None. `complete_only`: the body is
    still arriving, so its last event (not yet ended by a blank line) is not read."""
    # SSE lines may end in CRLF, LF or CR (sse-starlette, the SDK's, writes CRLF).
    content = content.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    blocks = content.split(b"\n\n")
    if complete_only:
        blocks.pop()
    for block in blocks:
        data = b"\n".join(line[5:].lstrip() for line in block.split(b"\n") if line.startswith(b"data:"))
        if data:
            try:
                message = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise MCPError(
                    code=-32603, message=f"upstream sent an SSE event that is not JSON: {data!r:.200}"
                ) from None
            if isinstance(message, dict) and message.get("id") == rid:
                return cast(dict[str, Any], message)
    return None


def _holds_answer(body: bytes, *, rid: int) -> bool:
    """Whether an SSE body still arriving already holds the answer to `rid` (a server may
    keep the stream open after it)."""
    try:
        return _sse_answer(body, rid, complete_only=True) is not None
    except MCPError:
        return False  # the whole body, read when it ends, says what is wrong
