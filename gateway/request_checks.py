"""What the MCP endpoint checks of a request before anything runs: header values, the
body's media type and JSON, the JSON-RPC envelope, and the 2026-07-28 `_meta` envelope.

Each check answers what is wrong in words a client can act on (None: nothing is), so
that the fast path and the SDK's path refuse the same request alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import pydantic
import pydantic_core
from mcp.shared.inbound import find_duplicated_routing_header
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    LOG_LEVEL_META_KEY,
    PROTOCOL_VERSION_META_KEY,
    ClientCapabilities,
    Implementation,
    LoggingLevel,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import TypeAdapter

__all__ = [
    "ENVELOPE_VALUES",
    "envelope_problem",
    "json_media",
    "jsonrpc_problem",
    "not_json",
    "padded",
    "plain_client",
    "repeated_routing_header",
]

OWS = (32, 9)  # SP and HTAB, as the byte values indexing a `bytes` gives


def padded(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a header value starts or ends with whitespace."""
    for _, value in headers:  # noqa: SIM110 (a generator in `any` costs twice as much here)
        if value and (value[0] in OWS or value[-1] in OWS):
            return True
    return False


def not_json(body: bytes) -> str | None:
    """Why `body` is not JSON to the SDK's own parser (orjson refuses a few things it takes)."""
    try:
        pydantic_core.from_json(body)
    except ValueError as exc:
        return str(exc)
    return None


def plain_client(body: bytes) -> bool:
    """An `initialize` from a client that declared nothing an upstream could ask of it."""
    if b'"initialize"' not in body:
        return False
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    capabilities = (message.get("params") or {}).get("capabilities") if isinstance(message, dict) else None
    return isinstance(capabilities, dict) and not {"sampling", "elicitation", "roots"} & set(capabilities)


def json_media(content_type: bytes) -> bool:
    """Whether a Content-Type names JSON (`application/json`, parameters allowed)."""
    return content_type.split(b";", 1)[0].strip().lower() == b"application/json"


def repeated_routing_header(raw_headers: list[tuple[bytes, bytes]]) -> str | None:
    named = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers]
    if sum(1 for k, _ in named if k.lower() == "mcp-session-id") > 1:
        return "mcp-session-id"
    return find_duplicated_routing_header(named)


def jsonrpc_problem(message: Any, *, version: str, session: bool) -> str | None:
    """What makes a parsed body no JSON-RPC request the gateway can take, if anything.

    Said here for both eras: the SDK's handshake transport would take a request with an
    invalid id for a notification (202, no answer ever) and explain other defects with a
    validation dump. A body without `method` is a client's answer to a server request:
    the SDK's to judge.
    """
    if isinstance(message, list):
        return "batches are not supported: send one JSON-RPC message per POST"
    if not isinstance(message, dict):
        return "the body must be one JSON-RPC message object"
    if "method" not in message:
        return None
    if message.get("jsonrpc") != "2.0":
        return f'"jsonrpc" must be "2.0", got {orjson.dumps(message.get("jsonrpc")).decode()}'
    if not isinstance(message["method"], str):
        return '"method" must be a string'
    if "id" in message and (type(message["id"]) not in (str, int)):
        got = orjson.dumps(message["id"]).decode()[:40]
        return f'"id" must be a string or an integer, got {got} (leave it out for a notification)'
    params = message.get("params")
    if "params" in message and not isinstance(params, dict):
        return '"params" must be an object'
    meta = params.get("_meta") if isinstance(params, dict) else None
    if (
        not version
        and not session
        and isinstance(meta, dict)
        and meta.get(PROTOCOL_VERSION_META_KEY) in MODERN_PROTOCOL_VERSIONS
    ):
        return (
            f"a {meta[PROTOCOL_VERSION_META_KEY]} request needs the header "
            f"MCP-Protocol-Version: {meta[PROTOCOL_VERSION_META_KEY]} (and Mcp-Method, Mcp-Name)"
        )
    return None


ENVELOPE_VALUES: tuple[tuple[str, TypeAdapter[Any], str], ...] = (
    (CLIENT_CAPABILITIES_META_KEY, TypeAdapter(ClientCapabilities), "the client's capabilities object"),
    (CLIENT_INFO_META_KEY, TypeAdapter(Implementation), 'an object with "name" and "version"'),
    (LOG_LEVEL_META_KEY, TypeAdapter(LoggingLevel), 'a log level such as "info"'),
)


def envelope_problem(meta: Mapping[str, Any]) -> str | None:
    """What is wrong with a 2026-07-28 request's envelope values, if anything.

    The SDK would refuse them with a bare "Invalid request parameters", or the upstream
    would; the gateway names the key instead, on every path.
    """
    for key, adapter, expected in ENVELOPE_VALUES:
        if key in meta:
            try:
                adapter.validate_python(meta[key])
            except pydantic.ValidationError as exc:
                first = exc.errors()[0]
                where = "".join(f"[{part!r}]" for part in first["loc"])
                return f"params._meta[{key!r}]{where} is not valid ({first['msg']}); send {expected}"
    return None
