"""`/mcp` and `/mcp/<virtual server>`: the gate in front of the MCP servers.

For every request, in order: the `Origin` is checked (DNS-rebinding protection), the
body size is capped, the caller is authenticated (401 with `WWW-Authenticate`
otherwise), and the principal and view are attached to the ASGI scope. Then:

- a `tools/call` that needs nothing but a reply takes the fast path: parsed with
  orjson, decided, forwarded and answered here, without the SDK's server machinery
  (whose per-message cost is larger than the gateway's whole budget);
- everything else (the handshake, lists, resources, prompts, progress-reporting
  calls, GET streams, DELETE) goes to the SDK's session manager for that view.

Handshake-era session ids are learned from the SDK's `initialize` answers, so the fast
path only serves sessions the SDK created. A session belongs to the credential that
opened it: the SDK is told who the caller is (`scope["user"]`) and refuses anyone else's
requests for it as if it did not exist (404); the fast path and fast-path cancellation do
the same.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import orjson
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http import check_accept_headers
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    InboundModernRoute,
    classify_inbound_request,
)
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    SERVER_INFO_META_KEY,
)
from mcp_types.jsonrpc import HEADER_MISMATCH, UNSUPPORTED_PROTOCOL_VERSION
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from prometheus_client import Gauge
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from bastion.errors import BastionError
from bastion.logs import request_id
from bastion.metrics import REGISTRY
from bastion.net import LOOPBACK_NAMES, authority_host, is_loopback
from gateway.auth import Authenticator, AuthFailure, AuthUnavailableError, Principal, unauthorized_response
from gateway.calls import RATE_LIMITED, ROUND_TRIP_FIELDS, CallContext, CallError, Gateway
from gateway.catalog import View
from gateway.mcp_server import SCOPE_KEY, GatewayMCPServer
from gateway.request_checks import (
    ENVELOPE_VALUES,
    envelope_problem,
    json_media,
    jsonrpc_problem,
    not_json,
    padded,
    plain_client,
    repeated_routing_header,
)

__all__ = ["MCPEndpoint", "ViewRuntime"]

logger = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024
SESSIONS_OPEN = Gauge(
    "bastion_gateway_sessions_open",
    "Handshake-era MCP sessions seen within the idle timeout",
    registry=REGISTRY,
)
SESSION_IDLE = 1800.0
PARSE_ERROR = -32700
REQUEST_CANCELLED = -32800  # JSON-RPC's reserved range; the code LSP uses for the same
DISCONNECT_WATCH_AFTER = 0.02  # seconds a 2026-07-28 call runs before its client's connection is watched
TEST_PRINCIPAL = Principal(
    subject="loopback-test", tenant="test", roles=("conformance",), scopes=(), auth_method="loopback_test"
)
_JSON = [(b"content-type", b"application/json")]


@dataclass
class ViewRuntime:
    """One endpoint's live state: its catalog view, SDK server and session manager."""

    view: View  # what handshake-era clients see
    server: GatewayMCPServer
    manager: StreamableHTTPSessionManager
    modern_view: View  # what 2026-07-28 clients see (dual-era upstreams list their own catalog)


async def _reply(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    head = [*(headers or _JSON), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def _rpc_error(rid: Any, code: int, message: str, data: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return orjson.dumps({"jsonrpc": "2.0", "id": rid, "error": error})


class MCPEndpoint:
    """ASGI app for every MCP path of the gateway."""

    def __init__(
        self,
        gateway: Gateway,
        views: Mapping[str, ViewRuntime],
        authenticator: Authenticator,
        *,
        allowed_origins: tuple[str, ...] = (),
        allowed_hosts: tuple[str, ...] = (),
        listen_host: str = "127.0.0.1",
        max_body: int = MAX_BODY,
        session_idle: float = SESSION_IDLE,
    ) -> None:
        self.gateway = gateway
        self.views = views
        # What the SDK stamps on every 2026-07-28 result it answers: the fast path does too.
        # Each endpoint's own (a virtual server's SDK server has a name of its own).
        self._server_infos = {
            name: runtime.server.server.server_info_stamp for name, runtime in views.items()
        }
        self.authenticator = authenticator
        self.allowed_origins = frozenset(o.rstrip("/").lower() for o in allowed_origins)
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.listen_loopback = is_loopback(listen_host)
        self.max_body = max_body
        self.session_idle = session_idle
        # Handshake sessions the fast path may serve: id -> last seen. A client that declared
        # sampling, elicitation or roots (or asked for log lines) stays on the SDK path, where
        # the gateway can relay an upstream's requests back to it.
        self._sessions: dict[str, float] = {}
        self._open_sessions: dict[str, float] = {}  # every handshake session: id -> last seen
        self._owners: dict[str, Owner] = {}  # every handshake session: id -> who opened it
        self._users: dict[Owner, AuthenticatedUser] = {}  # the SDK's view of each caller
        self._last_prune = time.monotonic()
        # Fast-path calls of handshake sessions: (session id, request id as JSON) -> the
        # request's task, so the session's `notifications/cancelled` can reach them.
        self._inflight: dict[tuple[bytes, bytes], asyncio.Task[Any]] = {}
        # Request tasks cancelled for their client (not by the gateway stopping).
        self._client_cancelled: set[asyncio.Task[Any]] = set()
        self._hosts: dict[bytes, bool] = {}  # Host header -> allowed, decided once
        self._accepts: dict[bytes, bool] = {}  # Accept header -> JSON and SSE both accepted
        self._envelopes: dict[bytes, str | None] = {}  # 2026-07-28 envelope values -> problem

    # -- the gate ---------------------------------------------------------------

    def _host_ok(self, headers: Mapping[bytes, bytes]) -> bool:
        """On loopback, a foreign Host means a DNS-rebinding attempt from a browser."""
        if not self.listen_loopback:
            return True
        raw = headers.get(b"host", b"")
        known = self._hosts.get(raw)
        if known is not None:
            return known
        name = authority_host(raw.decode("latin-1").lower())
        ok = name is not None and (name in LOOPBACK_NAMES or name in self.allowed_hosts)
        if len(self._hosts) < 256:  # clients send a handful of Host values; strangers are not kept
            self._hosts[raw] = ok
        return ok

    def _origin_ok(self, headers: Mapping[bytes, bytes]) -> bool:
        origin = headers.get(b"origin")
        if not origin:
            return True  # non-browser clients send none
        text = origin.decode("latin-1").rstrip("/").lower()
        if text in self.allowed_origins:
            return True
        try:
            parts = urlsplit(text)
            host, netloc = parts.hostname, parts.netloc
        except ValueError:
            return False  # not an origin at all (an unclosed IPv6 bracket): refused like a foreign one
        if self.listen_loopback and host in LOOPBACK_NAMES:
            return True
        own = headers.get(b"host", b"").decode("latin-1").lower()
        return bool(own) and netloc == own

    def _media_ok(self, headers: Mapping[bytes, bytes]) -> bool:
        """What the SDK asks of a POST: a JSON body, and an answer as JSON or SSE accepted.

        The SDK answers other requests 400 (`Content-Type`) or 406 (`Accept`), so the fast
        path leaves them to it. Accept values repeat from call to call: verdicts are cached.
        """
        if not json_media(headers.get(b"content-type", b"")):
            return False
        accept = headers.get(b"accept", b"")
        known = self._accepts.get(accept)
        if known is None:  # the SDK's own reading of the header, so both paths agree
            has_json, has_sse = check_accept_headers(
                Request({"type": "http", "headers": [(b"accept", accept)]})
            )
            known = has_json and has_sse
            if len(self._accepts) < 256:
                self._accepts[accept] = known
        return known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"].rstrip("/")
        name = path[len("/mcp/") :] if path.startswith("/mcp/") else ""
        runtime = self.views.get(name)
        # An unknown path is answered only after the caller authenticates on the main
        # endpoint: the names of the virtual servers are not for anonymous callers.
        unknown = runtime is None
        if runtime is None:
            runtime = self.views[""]
        # Optional whitespace around a field value is not part of it (RFC 9110 5.5);
        # httptools keeps it, so it is dropped here for every layer after this one.
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        if padded(raw_headers):
            raw_headers = [(k, v.strip(b" \t")) for k, v in raw_headers]
            scope["headers"] = raw_headers
        headers = dict(raw_headers)
        # Every answer names its request (the client's X-Request-Id, else a new one), as the
        # gateway's other routes do: the id an operator finds in the audit table and the log.
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        named = (b"x-request-id", rid.encode("latin-1"))
        plain_send = send

        async def send_named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), named]
            await plain_send(message)

        send = send_named
        if not self._host_ok(headers):
            await _reply(
                send,
                421,
                _rpc_error(
                    None,
                    -32600,
                    "Host not allowed: this gateway answers to its "
                    "loopback names only (DNS-rebinding protection)",
                ),
            )
            return
        if not self._origin_ok(headers):
            await _reply(
                send,
                403,
                _rpc_error(
                    None,
                    -32600,
                    "Origin not allowed: requests from web pages must come "
                    "from the gateway's own origin or an allowed one",
                ),
            )
            return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._too_large(send)
            return
        client = scope.get("client")
        client_host = client[0] if client else None
        try:
            verdict = await self._authenticate(headers, client_host, runtime)
        except AuthUnavailableError as exc:
            # The caller is not yet known: the database's own words (hosts, paths) go to the log.
            logger.error("authentication is unavailable: %s", exc.message)
            await _reply(
                send,
                503,
                _rpc_error(
                    None,
                    INTERNAL_ERROR,
                    "authentication is unavailable: the gateway cannot read its API keys right now; "
                    "retry shortly (its operator finds the cause in the gateway's log and /readyz)",
                ),
                [*_JSON, (b"retry-after", b"5")],
            )
            return
        if not isinstance(verdict, Principal):
            await unauthorized_response(verdict)(scope, receive, send)
            return
        principal = verdict
        if unknown:
            known = ", ".join(f"/mcp/{v}" for v in self.views if v) or "none"
            await _reply(
                send, 404, _rpc_error(None, -32601, f"no MCP endpoint at {path}; virtual servers: {known}")
            )
            return
        version = headers.get(b"mcp-protocol-version", b"").decode("latin-1")
        modern = version in MODERN_PROTOCOL_VERSIONS
        call = CallContext(
            principal=principal,
            view=runtime.modern_view if modern else runtime.view,
            client_address=client_host,
            request_id=rid,
            modern=modern,
        )
        scope[SCOPE_KEY] = call
        if scope["method"] != "POST":
            await self._to_sdk(runtime, scope, receive, send, None)
            return
        if not json_media(headers.get(b"content-type", b"")):
            got = headers.get(b"content-type", b"").decode("latin-1")[:60] or "none"
            problem = f"Content-Type must be application/json (got {got}): send the JSON-RPC message as JSON"
            await _reply(send, 415, _rpc_error(None, -32600, problem), [*_JSON, (b"connection", b"close")])
            return
        body = await self._read_body(receive)
        if body is None:
            await self._too_large(send)
            return
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            message = None
            problem = not_json(body)
            if problem is not None and self._media_ok(headers):  # else the SDK's 400 or 406 comes first
                detail = f"Parse error: the request body is not JSON ({problem}); send one JSON-RPC message"
                await _reply(send, 400, _rpc_error(None, PARSE_ERROR, detail))
                return
        if message is not None and self._media_ok(headers):
            problem = jsonrpc_problem(message, version=version, session=b"mcp-session-id" in headers)
            if problem is not None:
                rid = message.get("id") if isinstance(message, dict) else None
                rid = rid if type(rid) in (str, int) else None
                await _reply(send, 400, _rpc_error(rid, INVALID_REQUEST, problem))
                return
        # A header sent twice is folded to one value here, the last copy winning, while
        # the SDK routes on the first: a routing header or session id sent twice is refused
        # for both eras. Other repeated headers go to the SDK, which sees every copy.
        folded = len(headers) != len(raw_headers)
        if folded:
            twice = repeated_routing_header(raw_headers)
            if twice is not None:
                rid = message.get("id") if isinstance(message, dict) else None
                problem = f"{twice} header appears more than once; send it once"
                await _reply(
                    send, 400, _rpc_error(rid if type(rid) in (str, int) else None, HEADER_MISMATCH, problem)
                )
                return
        if isinstance(message, dict):
            if (
                version
                and not modern
                and b"mcp-session-id" in headers
                and version not in HANDSHAKE_PROTOCOL_VERSIONS
            ):
                # On a session, every path refuses it alike (the fast path would serve it, and
                # the SDK would speak of a missing envelope). Without one, the SDK's 2026-07-28
                # path answers an unknown version itself.
                problem = (
                    f"unsupported MCP-Protocol-Version {version!r} on a session: send the version "
                    f"negotiated at initialize (this gateway speaks {', '.join(HANDSHAKE_PROTOCOL_VERSIONS)} "
                    "with sessions)"
                )
                data = {"supported": list(HANDSHAKE_PROTOCOL_VERSIONS), "requested": version}
                await _reply(
                    send, 400, _rpc_error(message.get("id"), UNSUPPORTED_PROTOCOL_VERSION, problem, data)
                )
                return
            if modern and (problem := self._envelope_problem(message)) is not None:
                await _reply(send, 400, _rpc_error(message.get("id"), INVALID_PARAMS, problem))
                return
            if not folded and await self._fast_path(call, runtime.manager, headers, message, receive, send):
                return
            if self._cancel_fast_call(principal, headers, message):
                await _reply(send, 202, b"", [])
                return
        await self._to_sdk(runtime, scope, receive, send, body)

    def _envelope_problem(self, message: dict[str, Any]) -> str | None:
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        if not isinstance(meta, dict):
            return None  # the SDK names a missing envelope
        values = [meta.get(key) for key, _, _ in ENVELOPE_VALUES]
        try:
            key = orjson.dumps(values)
        except orjson.JSONEncodeError:
            return envelope_problem(meta)
        if key in self._envelopes:  # envelopes repeat from call to call: verdicts are cached
            return self._envelopes[key]
        problem = envelope_problem(meta)
        if len(self._envelopes) < 256:
            self._envelopes[key] = problem
        return problem

    async def _too_large(self, send: Send) -> None:
        # The rest of the body is not read: the connection closes, or the client could go
        # on pushing it for as long as it liked.
        body = _rpc_error(None, -32600, f"request body over {self.max_body} bytes; send at most that much")
        await _reply(send, 413, body, [*_JSON, (b"connection", b"close")])

    async def _authenticate(
        self, headers: Mapping[bytes, bytes], client_host: str | None, runtime: ViewRuntime
    ) -> Principal | AuthFailure | None:
        """The principal, or why not (None: no credentials at all)."""
        authorization = headers.get(b"authorization")
        if authorization:
            return await self.authenticator.verify(authorization.decode("latin-1"), client_host)
        if (
            runtime.view.config.allow_loopback_test_principal
            and self.listen_loopback
            and is_loopback(client_host)
        ):
            return TEST_PRINCIPAL
        return None

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    # -- the SDK path -----------------------------------------------------------

    async def _to_sdk(
        self, runtime: ViewRuntime, scope: Scope, receive: Receive, send: Send, body: bytes | None
    ) -> None:
        if body is not None:
            original = receive
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await original()

            receive = replay
        method = scope["method"]
        headers = dict(scope["headers"])
        owner = _owner(scope[SCOPE_KEY].principal)
        scope["user"] = self._sdk_user(owner)  # the SDK binds each session to its opener

        is_initialize = body is not None and b'"initialize"' in body
        fast_ok = body is not None and plain_client(body)

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and method == "POST" and is_initialize:
                for key, value in message.get("headers", []):
                    if key.lower() == b"mcp-session-id":
                        self._open_sessions[value.decode("latin-1")] = time.monotonic()
                        self._owners[value.decode("latin-1")] = owner
                        if fast_ok:
                            self._sessions[value.decode("latin-1")] = time.monotonic()
            await send(message)

        sid = headers.get(b"mcp-session-id")
        if sid and self._owners.get(sid.decode("latin-1")) != owner:
            sid = None  # not the caller's session: the SDK answers 404, nothing here changes
        if sid:
            known = sid.decode("latin-1")
            if known in self._open_sessions:  # only sessions the SDK created: a made-up id counts nothing
                self._open_sessions[known] = time.monotonic()
            if body is not None and b'"logging/setLevel"' in body:
                self._sessions.pop(sid.decode("latin-1"), None)  # it wants log lines: SDK path
        if method == "DELETE" and sid:
            self._forget(sid.decode("latin-1"))
        self._count_sessions()
        await runtime.manager.handle_request(scope, receive, watch)

    def _sdk_user(self, owner: Owner) -> AuthenticatedUser:
        user = self._users.get(owner)
        if user is None:
            method, tenant, subject, key_id = owner
            token = AccessToken(
                token="",  # the SDK compares identities, never the credential itself
                client_id=key_id or subject,
                scopes=[],
                subject=f"{tenant}/{subject}",
                claims={"iss": f"bastion:{method}"},
            )
            user = AuthenticatedUser(token)
            if len(self._users) < 10_000:
                self._users[owner] = user
        return user

    def _forget(self, sid: str) -> None:
        self._sessions.pop(sid, None)
        self._open_sessions.pop(sid, None)
        self._owners.pop(sid, None)
        for runtime in self.views.values():
            runtime.server.forget(sid)  # nothing more is sent to it

    def _count_sessions(self) -> None:
        """Drop sessions idle past the SDK's own timeout, then publish the count."""
        now = time.monotonic()
        if now - self._last_prune > 60:
            self._last_prune = now
            for table in (self._sessions, self._open_sessions):
                for sid in [s for s, seen in table.items() if now - seen > self.session_idle]:
                    del table[sid]
            for sid in [s for s in self._owners if s not in self._open_sessions]:
                self._forget(sid)
        SESSIONS_OPEN.set(len(self._open_sessions))

    # -- the fast path ----------------------------------------------------------

    async def _fast_path(
        self,
        call: CallContext,
        manager: StreamableHTTPSessionManager,
        headers: Mapping[bytes, bytes],
        message: dict[str, Any],
        receive: Receive,
        send: Send,
    ) -> bool:
        """Answer a plain `tools/call` here; False hands the request to the SDK."""
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
            text_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers.items()}
            if not isinstance(classify_inbound_request(message, headers=text_headers), InboundModernRoute):
                return False  # the SDK answers envelope and header errors with the right codes
        else:
            seen = self._sessions.get(sid.decode("latin-1")) if sid else None
            if seen is None or sid is None or time.monotonic() - seen > self.session_idle:
                return False
            if self._owners.get(sid.decode("latin-1")) != _owner(call.principal):
                return False  # another caller's session: the SDK answers 404
            if not _keep_sdk_session(manager, sid.decode("latin-1"), self.session_idle):
                return False  # the SDK ended it (idle, or deleted): it answers as it does
            now = time.monotonic()
            self._sessions[sid.decode("latin-1")] = self._open_sessions[sid.decode("latin-1")] = now
        if not self._media_ok(headers):
            return False  # the SDK refuses it with its own status (400 or 406)
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
        # 2026-07-28 has no session to carry `notifications/cancelled`: a client cancels by
        # closing its request. Most calls end within milliseconds, so the watch on the
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
            payload = _rpc_error(message["id"], INTERNAL_ERROR, exc.message)
        except Exception:
            # A defect: the client still gets a JSON-RPC answer, the log gets the traceback.
            logger.exception("tools/call %s failed in the gateway", params["name"])
            rid = f" (request id {call.request_id})" if call.request_id else ""
            payload = _rpc_error(
                message["id"], INTERNAL_ERROR, f"internal error in the gateway{rid}; its log has the details"
            )
        except asyncio.CancelledError:
            if current not in self._client_cancelled or current.cancelling() > 1:
                raise  # the gateway itself is being stopped
            current.uncancel()
            if modern:
                return True  # the client closed its request: nobody reads an answer
            # The client cancelled the call: it reads no answer, the SDK's would be this.
            payload = _rpc_error(message["id"], REQUEST_CANCELLED, "request cancelled by the client")
        finally:
            request_id.reset(token)
            if handle is not None:
                handle.cancel()
            if watch is not None:
                watch.stop()
            self._client_cancelled.discard(current)
            if key is not None:
                self._inflight.pop(key, None)
        await _reply(send, status, payload, [*_JSON, *extra])  # the client accepts JSON (`_media_ok`)
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

    def _cancel_fast_call(
        self, principal: Principal, headers: Mapping[bytes, bytes], message: dict[str, Any]
    ) -> bool:
        """Cancel the fast-path call a handshake session's `notifications/cancelled` names."""
        if not self._inflight or message.get("method") != "notifications/cancelled":
            return False
        params = message.get("params")
        if not isinstance(params, dict) or "requestId" not in params:
            return False
        sid = headers.get(b"mcp-session-id", b"")
        if self._owners.get(sid.decode("latin-1")) != _owner(principal):
            return False  # another caller's session: the SDK answers 404
        task = self._inflight.get((sid, orjson.dumps(params["requestId"])))
        if task is None:
            return False
        self._client_cancelled.add(task)
        task.cancel()
        return True


Owner = tuple[str, str, str, str | None]  # auth method, tenant, subject, key id


def _owner(principal: Principal) -> Owner:
    """Who a session belongs to: the credential that opened it (an API key's id)."""
    return (principal.auth_method, principal.tenant, principal.subject, principal.key_id)


def _keep_sdk_session(manager: StreamableHTTPSessionManager, sid: str, idle: float) -> bool:
    """Whether the SDK still holds session `sid`; if so, restart its idle countdown.

    Fast-path calls never reach the SDK, whose session would otherwise end `idle` seconds
    after its last SDK-path request while its client is still calling tools. The SDK keeps
    its sessions in `_server_instances` and exposes each one's `idle_scope` for its host
    to run the countdown; the gateway touches the countdown as a request would.
    """
    transport = manager._server_instances.get(sid)  # pyright: ignore[reportPrivateUsage]
    if transport is None:
        return False
    scope = transport.idle_scope
    if scope is not None:
        if scope.cancel_called:
            return False
        # inf: an SDK request is in flight and holds the session. Pushed back only once
        # half the countdown has run, so that a busy session does not re-arm a timer per call.
        now = anyio.current_time()
        if scope.deadline != math.inf and scope.deadline - now < idle / 2:
            scope.deadline = now + idle
    return True


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
