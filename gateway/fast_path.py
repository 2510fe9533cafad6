"""The `tools/call` fast path: a plain call decided, forwarded and answered by the gateway.

A `tools/call` that needs nothing but a reply (no progress, no requests back to the
client, no `Mcp-Param-*` headers to validate) is answered here, without the SDK's
server machinery, whose per-message cost is larger than the gateway's whole budget.
Everything it does not take, it hands back (False) for the SDK path, which answers with
the same codes and messages.

Cancellation: a handshake-era session's `notifications/cancelled` names the request
(`cancel`); a 2026-07-28 client cancels by closing its request, which a watch on the
connection notices for calls still running after `DISCONNECT_WATCH_AFTER`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from typing import Any

import orjson
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS, decode_header_value
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    INTERNAL_ERROR,
    PROTOCOL_VERSION_META_KEY,
    SERVER_INFO_META_KEY,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.types import Receive, Send

from bastion.errors import BastionError
from bastion.logs import request_id
from gateway.auth import Principal
from gateway.calls import RATE_LIMITED, ROUND_TRIP_FIELDS, CallContext, CallError, Gateway
from gateway.replies import JSON, reply, rpc_error
from gateway.sessions import HandshakeSessions, owner_of

__all__ = ["DISCONNECT_WATCH_AFTER", "FastPath"]

logger = logging.getLogger(__name__)

REQUEST_CANCELLED = -32800  # JSON-RPC's reserved range; the code LSP uses for the same
DISCONNECT_WATCH_AFTER = 0.02  # seconds a 2026-07-28 call runs before its client's connection is watched


class FastPath:
    """Answers plain `tools/call` requests of both protocol eras.

    `server_infos`: what the SDK stamps on every 2026-07-28 result it answers, per
    endpoint (a virtual server's SDK server has a name of its own): the fast path does too.
    """

    def __init__(
        self, gateway: Gateway, sessions: HandshakeSessions, server_infos: Mapping[str, dict[str, Any]]
    ) -> None:
        self.gateway = gateway
        self.sessions = sessions
        self._server_infos = dict(server_infos)
        # Calls of handshake sessions: (session id, request id as JSON) -> the request's
        # task, so the session's `notifications/cancelled` can reach them.
        self._inflight: dict[tuple[bytes, bytes], asyncio.Task[Any]] = {}
        # Request tasks cancelled for their client (not by the gateway stopping).
        self._client_cancelled: set[asyncio.Task[Any]] = set()

    async def serve(
        self,
        call: CallContext,
        manager: StreamableHTTPSessionManager,
        headers: Mapping[bytes, bytes],
        message: dict[str, Any],
        receive: Receive,
        send: Send,
    ) -> bool:
        """Answer a plain `tools/call` here; False hands the request to the SDK.

        The caller has checked the request's media types (JSON in, JSON or SSE accepted).
        """
        if message.get("method") != "tools/call":
            return False
        if message.get("jsonrpc") != "2.0" or type(message.get("id")) not in (str, int):
            return False  # not a JSON-RPC 2.0 request (a bool or null id included): the SDK says why
        params = message.get("params")
        if not isinstance(params, dict) or not isinstance(params.get("name"), str):
            return False
        meta = params.get("_meta")
        if isinstance(meta, dict) and "progressToken" in meta:
            return False  # progress needs a stream: the SDK path relays it
        entry = call.view.tools.get(params["name"])
        if entry is not None and entry.param_headers:
            return False  # the SDK validates the Mcp-Param-* headers such tools declare
        modern = call.modern
        sid = headers.get(b"mcp-session-id")
        if modern:
            if not modern_route(params, meta, headers):
                return False  # the SDK answers envelope and header errors with the right codes
        elif sid is None or not self.sessions.fast(sid.decode("latin-1"), owner_of(call.principal), manager):
            return False
        arguments = params.get("arguments")
        if arguments is not None and not isinstance(arguments, dict):
            return False  # not an object: the SDK answers -32602
        rounds = {k: params[k] for k in ROUND_TRIP_FIELDS if k in params} if modern else None
        # The call runs in this request's own task (a task per call cost a loop step); a
        # client's cancellation cancels this task, marked so that it is told apart from
        # the gateway stopping.
        current = asyncio.current_task()
        assert current is not None
        key = None if modern or sid is None else (sid, orjson.dumps(message["id"]))
        if key is not None:
            self._inflight[key] = current
        # Most calls end within milliseconds, so the watch on a 2026-07-28 client's
        # connection starts only for a call still running after DISCONNECT_WATCH_AFTER.
        watch = _DisconnectWatch(current, receive, self._client_cancelled) if modern else None
        handle = asyncio.get_running_loop().call_later(DISCONNECT_WATCH_AFTER, watch.start) if watch else None
        token = request_id.set(call.request_id)
        status, extra = 200, []
        try:
            result = await self.gateway.call_tool(
                call,
                params["name"],
                arguments,
                meta if isinstance(meta, dict) else None,
                rounds=rounds,
            )
            if modern:
                result = self._stamped(result, call.view.config.name)
            payload = orjson.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result})
        except CallError as exc:
            payload = orjson.dumps({"jsonrpc": "2.0", "id": message["id"], "error": exc.to_error()})
            # 2026-07-28 maps some error codes onto HTTP statuses; the handshake era answers 200.
            status = ERROR_CODE_HTTP_STATUS.get(exc.code, 200) if modern else 200
            if exc.code == RATE_LIMITED and exc.retry_after is not None:
                status = 429
                extra = [(b"retry-after", str(max(1, math.ceil(exc.retry_after))).encode())]
        except BastionError as exc:
            # Failed closed (the audit event could not be written, ...): the message says why.
            logger.error("tools/call %s failed: %s", params["name"], exc.message)
            payload = rpc_error(message["id"], INTERNAL_ERROR, exc.message)
        except Exception:
            # A defect: the client still gets a JSON-RPC answer, the log gets the traceback.
            logger.exception("tools/call %s failed in the gateway", params["name"])
            rid = f" (request id {call.request_id})" if call.request_id else ""
            payload = rpc_error(
                message["id"], INTERNAL_ERROR, f"internal error in the gateway{rid}; its log has the details"
            )
        except asyncio.CancelledError:
            if current not in self._client_cancelled or current.cancelling() > 1:
                raise  # the gateway itself is being stopped
            current.uncancel()
            if modern:
                return True  # the client closed its request: nobody reads an answer
            # The client cancelled the call: it reads no answer, the SDK's would be this.
            payload = rpc_error(message["id"], REQUEST_CANCELLED, "request cancelled by the client")
        finally:
            request_id.reset(token)
            if handle is not None:
                handle.cancel()
            if watch is not None:
                watch.stop()
            self._client_cancelled.discard(current)
            if key is not None:
                self._inflight.pop(key, None)
        await reply(send, status, payload, [*JSON, *extra])  # the client accepts JSON (checked)
        return True

    def cancel(self, principal: Principal, headers: Mapping[bytes, bytes], message: dict[str, Any]) -> bool:
        """Cancel the fast-path call a handshake session's `notifications/cancelled` names."""
        if not self._inflight or message.get("method") != "notifications/cancelled":
            return False
        params = message.get("params")
        if not isinstance(params, dict) or "requestId" not in params:
            return False
        sid = headers.get(b"mcp-session-id", b"")
        if not self.sessions.belongs(sid.decode("latin-1"), owner_of(principal)):
            return False  # another caller's session: the SDK answers 404
        task = self._inflight.get((sid, orjson.dumps(params["requestId"])))
        if task is None:
            return False
        self._client_cancelled.add(task)
        task.cancel()
        return True

    def _stamped(self, result: dict[str, Any], view: str) -> dict[str, Any]:
        """A 2026-07-28 result as the SDK would send it: `resultType` (an upstream's
        `input_required` passes through) and the gateway's `serverInfo` in `_meta`."""
        stamped = {**result, "resultType": result.get("resultType", "complete")}
        meta = result.get("_meta")
        unstamped = meta is None or (isinstance(meta, dict) and meta.get(SERVER_INFO_META_KEY) is None)
        info = self._server_infos.get(view)
        if info is not None and unstamped:
            stamped["_meta"] = {**(meta or {}), SERVER_INFO_META_KEY: info}
        return stamped


def modern_route(params: dict[str, Any], meta: Any, headers: Mapping[bytes, bytes]) -> bool:
    """Whether the SDK's `classify_inbound_request` routes this 2026-07-28 `tools/call`
    (`params["name"]` a string) as served: the envelope's version and capabilities, and the
    version, method and name headers agreeing with the body. Read straight off the raw
    headers: the SDK's reading first decodes every header, a tenth of the fast path's work.
    """
    if not isinstance(meta, dict) or CLIENT_CAPABILITIES_META_KEY not in meta:
        return False
    version = meta.get(PROTOCOL_VERSION_META_KEY)
    if type(version) is not str or version not in MODERN_PROTOCOL_VERSIONS:
        return False
    if headers.get(b"mcp-protocol-version", b"").decode("latin-1") != version:
        return False
    if headers.get(b"mcp-method") != b"tools/call":
        return False
    name = headers.get(b"mcp-name")
    return name is not None and decode_header_value(name.decode("latin-1")) == params["name"]


class _DisconnectWatch:
    """Reads a 2026-07-28 request's connection; when the client goes, cancels its call."""

    def __init__(self, task: asyncio.Task[Any], receive: Receive, cancelled: set[asyncio.Task[Any]]) -> None:
        self.task = task
        self.receive = receive
        self.cancelled = cancelled
        self.watcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.watcher = asyncio.get_running_loop().create_task(self._watch())

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()

    async def _watch(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        self.cancelled.add(self.task)
        self.task.cancel()
