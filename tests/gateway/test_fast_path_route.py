"""The fast path's reading of a 2026-07-28 envelope agrees with the SDK's own, case by case."""

from __future__ import annotations

import itertools
from typing import Any

from mcp.shared.inbound import InboundModernRoute, classify_inbound_request, encode_header_value
from mcp_types import CLIENT_CAPABILITIES_META_KEY, PROTOCOL_VERSION_META_KEY

from gateway.fast_path import modern_route

VERSION = "2026-07-28"
ABSENT = object()

METAS: list[Any] = [
    {PROTOCOL_VERSION_META_KEY: VERSION, CLIENT_CAPABILITIES_META_KEY: {}},
    {PROTOCOL_VERSION_META_KEY: VERSION, CLIENT_CAPABILITIES_META_KEY: None},
    {PROTOCOL_VERSION_META_KEY: VERSION},
    {CLIENT_CAPABILITIES_META_KEY: {}},
    {PROTOCOL_VERSION_META_KEY: "2025-11-25", CLIENT_CAPABILITIES_META_KEY: {}},
    {PROTOCOL_VERSION_META_KEY: "2099-01-01", CLIENT_CAPABILITIES_META_KEY: {}},
    {PROTOCOL_VERSION_META_KEY: None, CLIENT_CAPABILITIES_META_KEY: {}},
    {PROTOCOL_VERSION_META_KEY: 20260728, CLIENT_CAPABILITIES_META_KEY: {}},
    {PROTOCOL_VERSION_META_KEY: "", CLIENT_CAPABILITIES_META_KEY: {}},
    [],
    "envelope",
    None,
]
VERSION_HEADERS: list[Any] = [VERSION, "2025-11-25", "", ABSENT, VERSION + " "]
METHOD_HEADERS: list[Any] = ["tools/call", "tools/list", "TOOLS/CALL", "", ABSENT]
NAMES = ["echo", "héllo wörld", " padded ", "=?base64?ZWNobw==?="]


def name_headers(name: str) -> list[Any]:
    return [
        name,
        encode_header_value(name),
        "other",
        encode_header_value("other"),
        "",
        ABSENT,
        "=?base64?!!?=",
    ]


def test_the_fast_path_routes_exactly_what_the_sdk_routes() -> None:
    checked = routed = 0
    for name, meta, version, method in itertools.product(NAMES, METAS, VERSION_HEADERS, METHOD_HEADERS):
        for name_header in name_headers(name):
            text = {
                key: value
                for key, value in (
                    ("mcp-protocol-version", version),
                    ("mcp-method", method),
                    ("mcp-name", name_header),
                )
                if value is not ABSENT
            }
            params: dict[str, Any] = {"name": name, "arguments": {}}
            if meta is not None:
                params["_meta"] = meta
            message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
            sdk = isinstance(classify_inbound_request(message, headers=text), InboundModernRoute)
            # On the wire the headers are bytes; the SDK reads them as latin-1.
            raw = {key.encode(): value.encode("latin-1") for key, value in text.items()}
            assert modern_route(params, params.get("_meta"), raw) is sdk, (meta, text, name)
            routed += sdk
            checked += 1
    assert checked == len(NAMES) * len(METAS) * len(VERSION_HEADERS) * len(METHOD_HEADERS) * 7
    # Two good envelopes, each with the name as it is or encoded; a name that looks encoded
    # itself is read as what it encodes, so only its encoded form routes.
    assert routed == (len(NAMES) - 1) * 2 * 2 + 2
