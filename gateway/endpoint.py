"""`/mcp` and `/mcp/<virtual server>`: the gate in front of the MCP servers.

For every request, in order: the `Origin` is checked (DNS-rebinding protection), the
body size is capped, the caller is authenticated (401 with `WWW-Authenticate`
otherwise), and the principal and view are attached to the ASGI scope. Then:

- a `tools/call` that needs nothing but a reply takes the fast path
  (`gateway/fast_path.py`): decided, forwarded and answered by the gateway, without the
  SDK's server machinery;
- everything else (the handshake, lists, resources, prompts, progress-reporting
  calls, GET streams, DELETE) goes to the SDK's session manager for that view.

Handshake-era session ids are learned from the SDK's `initialize` answers
(`gateway/sessions.py`), so the fast path only serves sessions the SDK created. A
session belongs to the credential that opened it: the SDK is told who the caller is
(`scope["user"]`) and refuses anyone else's requests for it as if it did not exist
(404); the fast path and fast-path cancellation do the same.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
from mcp.server.auth.middleware.bearer_auth import authorization_context
from mcp.server.streamable_http import check_accept_headers
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
)
from mcp_types.jsonrpc import HEADER_MISMATCH, UNSUPPORTED_PROTOCOL_VERSION
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from bastion.net import LOOPBACK_NAMES, authority_host, is_loopback
from gateway.audit import AuditEvent
from gateway.auth import (
    Authenticator,
    AuthFailure,
    AuthUnavailableError,
    Principal,
    bearer_token,
    parse_key,
    unauthorized_response,
)
from gateway.calls import CallContext, Gateway
from gateway.catalog import View
from gateway.event_store import SessionManager
from gateway.fast_path import FastPath
from gateway.mcp_server import SCOPE_KEY, GatewayMCPServer
from gateway.ratelimit import too_many_requests_response
from gateway.replies import JSON, reply, rpc_error
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
from gateway.session_records import SessionChange, SessionRecord, SessionRecords
from gateway.sessions import SESSION_IDLE, HandshakeSessions, Owner, owner_of

__all__ = ["MCPEndpoint", "ViewRuntime"]

logger = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024
PARSE_ERROR = -32700
# Methods whose requests take their rate-limit tokens where the gateway decides them (the
# tool's bucket, then the principal's: gateway/calls.py); every other request a principal
# sends (initialize, lists, pings, streams, ...) takes one from its principal's bucket here.
CHARGED_WHEN_DECIDED = frozenset(
    ("tools/call", "prompts/get", "resources/read", "resources/subscribe", "completion/complete")
)
TEST_PRINCIPAL = Principal(
    subject="loopback-test", tenant="test", roles=("conformance",), scopes=(), auth_method="loopback_test"
)


class _ClientGone(Exception):
    """The client left before its request's body arrived whole: nothing to act on, nobody
    to answer (a cut-off body may still parse, as a different request)."""


@dataclass
class ViewRuntime:
    """One endpoint's live state: its catalog view, SDK server and session manager."""

    view: View  # what handshake-era clients see
    server: GatewayMCPServer
    manager: SessionManager
    modern_view: View  # what 2026-07-28 clients see (dual-era upstreams list their own catalog)


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
        records: SessionRecords | None = None,
    ) -> None:
        self.gateway = gateway
        self.views = views
        self.authenticator = authenticator
        self.allowed_origins = frozenset(o.rstrip("/").lower() for o in allowed_origins)
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.listen_loopback = is_loopback(listen_host)
        self.max_body = max_body
        self.sessions = HandshakeSessions(session_idle, self._forget)
        self.records = records  # None: sessions stay with the process that opened them
        # Requests of handshake-era sessions the SDK is answering: (session, id as the SDK
        # keys it). The SDK keys a request's answer stream by its id alone, so a second
        # request under an id still in use would take the first one's answer and hang.
        self._answering: set[tuple[str, str]] = set()
        self._taking_on: set[asyncio.Task[None]] = set()  # other replicas' session changes
        self.fast_path = FastPath(
            gateway,
            self.sessions,
            {name: runtime.server.server.server_info_stamp for name, runtime in views.items()},
        )
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
        arrived = time.perf_counter()
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
            await reply(
                send,
                421,
                rpc_error(
                    None,
                    -32600,
                    "Host not allowed: this gateway answers to its "
                    "loopback names only (DNS-rebinding protection)",
                ),
            )
            return
        if not self._origin_ok(headers):
            await reply(
                send,
                403,
                rpc_error(
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
            await reply(
                send,
                503,
                rpc_error(
                    None,
                    INTERNAL_ERROR,
                    "authentication is unavailable: the gateway cannot read its API keys right now; "
                    "retry shortly (its operator finds the cause in the gateway's log and /readyz)",
                ),
                [*JSON, (b"retry-after", b"5")],
            )
            return
        if not isinstance(verdict, Principal):
            if verdict is not None and verdict.reason != "missing":
                await self._credentials_refused(verdict, headers, scope, client_host, rid, arrived)
            await unauthorized_response(verdict)(scope, receive, send)
            return
        principal = verdict
        if unknown:
            known = ", ".join(f"/mcp/{v}" for v in self.views if v) or "none"
            await reply(
                send, 404, rpc_error(None, -32601, f"no MCP endpoint at {path}; virtual servers: {known}")
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
            arrived=arrived,
        )
        scope[SCOPE_KEY] = call
        if scope["method"] != "POST":
            if await self._over_limit(call, f"{scope['method']} {scope['path']}", None, scope, receive, send):
                return
            await self._to_sdk(runtime, scope, receive, send, None)
            return
        if not json_media(headers.get(b"content-type", b"")):
            got = headers.get(b"content-type", b"").decode("latin-1")[:60] or "none"
            problem = f"Content-Type must be application/json (got {got}): send the JSON-RPC message as JSON"
            await reply(send, 415, rpc_error(None, -32600, problem), [*JSON, (b"connection", b"close")])
            return
        try:
            body = await self._read_body(receive)
        except _ClientGone:
            return
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
                await reply(send, 400, rpc_error(None, PARSE_ERROR, detail))
                return
        media_ok = self._media_ok(headers)
        if message is not None and media_ok:
            problem = jsonrpc_problem(message, version=version, session=b"mcp-session-id" in headers)
            if problem is not None:
                rid = message.get("id") if isinstance(message, dict) else None
                rid = rid if type(rid) in (str, int) else None
                await reply(send, 400, rpc_error(rid, INVALID_REQUEST, problem))
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
                await reply(
                    send, 400, rpc_error(rid if type(rid) in (str, int) else None, HEADER_MISMATCH, problem)
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
                await reply(
                    send, 400, rpc_error(message.get("id"), UNSUPPORTED_PROTOCOL_VERSION, problem, data)
                )
                return
            if modern and (problem := self._envelope_problem(message)) is not None:
                await reply(send, 400, rpc_error(message.get("id"), INVALID_PARAMS, problem))
                return
            method = message.get("method")
            if (
                method is not None  # not the client's answer to a request the gateway relayed
                and method not in CHARGED_WHEN_DECIDED
                and await self._over_limit(call, str(method), message.get("id"), scope, receive, send)
            ):
                return
            if (
                not folded
                and media_ok
                and await self.fast_path.serve(call, runtime.manager, headers, message, receive, send)
            ):
                return
            if self.fast_path.cancel(principal, headers, message):
                await reply(send, 202, b"", [])
                return
        await self._to_sdk(
            runtime, scope, receive, send, body, message if isinstance(message, dict) else None
        )

    async def _over_limit(
        self, call: CallContext, action: str, rid: Any, scope: Scope, receive: Receive, send: Send
    ) -> bool:
        """Take a token from the caller's bucket; if there is none, answer 429 and say so.

        Audited as the gateway's other refusals before any decision are: once per principal
        and window, the rest counted (`bastion_rate_limited_total{scope="principal"}` counts
        each), so a flood of refused requests is not a flood of writes.
        """
        verdict = await self.gateway.limiter.check(call.principal, None)
        if verdict.allowed:
            return False
        await self.gateway.rate_limit_refused(call, action, verdict)
        answered = rid if type(rid) in (str, int) else None
        await too_many_requests_response(verdict, jsonrpc_id=answered)(scope, receive, send)
        return True

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
        body = rpc_error(
            None,
            -32600,
            f"request body over {self.max_body:,} bytes, the most the gateway takes: send less; for a "
            "large file, give a tool the file's path on the server instead of its content",
        )
        await reply(send, 413, body, [*JSON, (b"connection", b"close")])

    async def _credentials_refused(
        self,
        failure: AuthFailure,
        headers: Mapping[bytes, bytes],
        scope: Scope,
        client_host: str | None,
        rid: str,
        arrived: float,
    ) -> None:
        """Audit presented credentials the gateway refused: once per client address and
        reason (and key, for a revoked or expired one) per window, the rest counted.

        Credentials not presented at all are not audited: asking without them is how every
        client learns that it must authenticate.
        """
        reasons = [failure.message]
        source: tuple[str | None, ...] = ("unauthenticated", client_host, failure.reason)
        if failure.reason in ("revoked", "expired"):
            # A key that exists: its public id says which. (An unknown id is the client's
            # invention, and one source per invented id would let it choose how much is written.)
            token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
            parsed = parse_key(token) if isinstance(token, str) else None
            if parsed is not None:
                reasons.append(f"key id {parsed.id}")
                source = (*source, parsed.id)
        latency = (time.perf_counter() - arrived) * 1000
        await self.gateway.refusals.refused(
            source,
            AuditEvent(
                time=datetime.now(UTC) - timedelta(milliseconds=latency),
                principal=None,
                action=f"{scope['method']} {scope['path']}",
                decision="deny",
                reasons=tuple(reasons),
                latency_ms=latency,
                outcome="unauthenticated",
                request_id=rid,
                client_address=client_host,
            ),
        )

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
                raise _ClientGone
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
        self,
        runtime: ViewRuntime,
        scope: Scope,
        receive: Receive,
        send: Send,
        body: bytes | None,
        message: dict[str, Any] | None = None,
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
        call: CallContext = scope[SCOPE_KEY]
        owner = owner_of(call.principal)
        scope["user"] = self.sessions.sdk_user(owner)  # the SDK binds each session to its opener
        raw_sid = headers.get(b"mcp-session-id")
        sid = raw_sid.decode("latin-1") if raw_sid else None
        if sid is not None and self.records is not None and not runtime.manager.holds(sid):
            await self._adopt(runtime, scope, sid, owner)

        is_initialize = body is not None and b'"initialize"' in body
        fast_ok = body is not None and plain_client(body)

        async def watch(out: Message) -> None:
            if out["type"] == "http.response.start" and method == "POST" and is_initialize:
                for key, value in out.get("headers", []):
                    if key.lower() == b"mcp-session-id":
                        opened = value.decode("latin-1")
                        self.sessions.opened(opened, owner, plain=fast_ok)
                        runtime.server.seen(opened, call)
                        await self._save(runtime, opened, owner, message, fast_ok)
            await send(out)

        if sid is not None and not self.sessions.belongs(sid, owner):
            sid = None  # not the caller's session: the SDK answers 404, nothing here changes
        if sid is not None:
            self.sessions.seen(sid)  # only sessions the SDK created: a made-up id counts nothing
            runtime.server.seen(sid, call)
            if body is not None and b'"logging/setLevel"' in body:
                self.sessions.to_sdk(sid)  # it wants log lines: SDK path
                if self.records is not None:  # on every replica
                    await self.records.change(sid, SessionChange("log_level", _log_level(message)))
        if method == "DELETE" and sid is not None:
            self.sessions.forget(sid)
            if self.records is not None:
                await self.records.end(sid)  # before the answer: no replica continues it after
        self.sessions.count()
        rid = message.get("id") if message is not None and "method" in message else None
        answering = (sid, str(rid)) if sid is not None and type(rid) in (str, int) else None
        if answering is not None:
            if answering in self._answering:
                problem = (
                    f"request id {json.dumps(rid)} is already in use by a request of this session "
                    "that is still being answered (its answer may have just reached you): give "
                    "every request of a session an id of its own, as MCP requires"
                )
                await reply(send, 400, rpc_error(rid, INVALID_REQUEST, problem))
                return
            self._answering.add(answering)
        try:
            await runtime.manager.handle_request(scope, receive, watch)
        finally:
            if answering is not None:
                self._answering.discard(answering)

    async def _save(
        self, runtime: ViewRuntime, sid: str, owner: Owner, initialize: dict[str, Any] | None, plain: bool
    ) -> None:
        """Session `sid` was just opened by `initialize`: other replicas may continue it."""
        if self.records is not None and initialize is not None:
            await self.records.save(sid, SessionRecord(runtime.view.config.name, owner, initialize, plain))

    async def _adopt(self, runtime: ViewRuntime, scope: Scope, sid: str, owner: Owner) -> None:
        """Continue here a session another replica (or an earlier run) opened, if it is
        the caller's and this endpoint's; otherwise the SDK answers 404 as for any."""
        assert self.records is not None
        record = await self.records.load(sid)
        if record is None or record.owner != owner or record.view != runtime.view.config.name:
            return
        requestor = authorization_context(scope["user"])
        if await runtime.manager.adopt(sid, requestor, scope, record.initialize):
            self.records.hold(sid, record)
            self.sessions.opened(sid, owner, plain=record.plain)
            runtime.server.seen(sid, scope[SCOPE_KEY])
            for change in record.changes():  # what it set up elsewhere: its lists, its subscriptions
                await self._take_on(runtime, sid, change)
            logger.info("continuing session %s opened elsewhere", sid[:8])

    def session_changed(self, sid: str, change: SessionChange) -> None:
        """Session `sid` set something up on another replica: its copy here takes it on."""
        if change.what == "log_level":
            if self.sessions.belongs_to_anyone(sid):
                self.sessions.to_sdk(sid)
            return
        for runtime in self.views.values():
            if runtime.manager.holds(sid):
                task = asyncio.get_running_loop().create_task(self._take_on(runtime, sid, change))
                self._taking_on.add(task)
                task.add_done_callback(self._taking_on.discard)

    @staticmethod
    async def _take_on(runtime: ViewRuntime, sid: str, change: SessionChange) -> None:
        try:
            await runtime.server.take_on(sid, change)
        except Exception:  # the session goes on; it may miss notifications of that change
            logger.exception("session %s could not take on %s %s", sid[:8], change.what, change.value)

    def session_ended(self, sid: str) -> None:
        """A client ended session `sid` on another replica: this one's copy ends too."""
        for runtime in self.views.values():
            runtime.manager.end(sid)
        if self.sessions.belongs_to_anyone(sid):
            self.sessions.forget(sid)

    def _forget(self, sid: str) -> None:
        if self.records is not None:
            self.records.drop(sid)
        for runtime in self.views.values():
            runtime.server.forget(sid)  # nothing more is sent to it


def _log_level(message: dict[str, Any] | None) -> str:
    """The level a `logging/setLevel` request asks for ("" if it names none)."""
    params = message.get("params") if message is not None else None
    level = params.get("level") if isinstance(params, dict) else None
    return level if isinstance(level, str) else ""
