"""The MCP endpoint's own HTTP answers: JSON-RPC bodies, each sent as one reply."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import Send

__all__ = ["JSON", "reply", "rpc_error"]

JSON = [(b"content-type", b"application/json")]


async def reply(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    head = [*(headers or JSON), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def rpc_error(rid: Any, code: int, message: str, data: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return orjson.dumps({"jsonrpc": "2.0", "id": rid, "error": error})
