"""The MCP server clients see, built on the SDK's low-level `Server`.

One `Server` per view (`/mcp` and each virtual server). The SDK speaks both protocol
eras, sessions, SSE, progress and cancellation; these handlers only translate each
request into the gateway's call path. The principal was authenticated by the
endpoint in front and travels in the ASGI scope (`scope["bastion.call"]`).

`tools/call` normally takes the fast path (`gateway.fastpath`); it reaches this
server when it needs the SDK's machinery (a progress token, an SSE-only client).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from mcp import types
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.session import ServerSession
from mcp.server.subscriptions import ListenHandler
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.subscriptions import (
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ToolsListChanged,
)
from mcp_types import INTERNAL_ERROR, JSONRPCNotification

from bastion import __version__
from bastion.errors import BastionError
from gateway.calls import ROUND_TRIP_FIELDS, CallContext, CallError, Gateway, ProgressFn
from gateway.catalog import View
from gateway.list_changes import KINDS, Kind, ListChanges, StreamBus, listing_of
from gateway.policy import Resource
from gateway.session_records import SessionChange

__all__ = ["GatewayMCPServer"]

logger = logging.getLogger(__name__)

SCOPE_KEY = "bastion.call"


def _context(ctx: Any) -> CallContext:
    request = getattr(ctx, "request", None)
    scope = getattr(request, "scope", None) or {}
    call = scope.get(SCOPE_KEY)
    if not isinstance(call, CallContext):
        raise MCPError(code=-32603, message="request reached the gateway server without authentication")
    return call


def _wire_meta(ctx: Any) -> dict[str, Any] | None:
    """The request's `_meta` exactly as the client sent it (wire key names)."""
    raw = getattr(ctx, "params", None) or {}
    meta = raw.get("_meta") if isinstance(raw, dict) else None
    return dict(meta) if isinstance(meta, dict) and meta else None


def _rounds(ctx: Any) -> dict[str, Any] | None:
    """A 2026-07-28 retry's `inputResponses` and `requestState`, as the client sent them."""
    raw = getattr(ctx, "params", None) or {}
    if not isinstance(raw, dict):
        return None
    return {k: raw[k] for k in ROUND_TRIP_FIELDS if k in raw} or None


def _input_required(raw: dict[str, Any]) -> types.InputRequiredResult | None:
    """An upstream's request for more input (SEP-2322), passed to the client as it came."""
    if raw.get("resultType") != "input_required":
        return None
    return types.InputRequiredResult.model_validate(raw)


def _raise(exc: CallError | BastionError) -> None:
    """The JSON-RPC error for a refusal, or for a call that failed closed (the audit event
    could not be written, ...): its message says why, on every protocol era."""
    if isinstance(exc, BastionError):
        raise MCPError(code=INTERNAL_ERROR, message=exc.message) from None
    raise MCPError(code=exc.code, message=exc.message, data=exc.to_error().get("data"))


def _no_cursor(params: types.PaginatedRequestParams | None) -> None:
    """The gateway answers every list whole (no `nextCursor`): a cursor is none of its own."""
    if params is not None and params.cursor is not None:
        raise MCPError(
            code=-32602,
            message=f"invalid cursor {params.cursor[:40]!r}: this server lists everything in one "
            "answer and never gives a cursor; list again without one",
        )


def _session_id(ctx: Any) -> str | None:
    """The handshake-era session a request came on (None for 2026-07-28 requests)."""
    request = getattr(ctx, "request", None)
    headers = getattr(request, "headers", None)
    sid = headers.get("mcp-session-id") if headers is not None else None
    return sid if isinstance(sid, str) and sid else None


def _session_key(sid: str) -> tuple[str, str]:
    """What a handshake-era session is known by among the watchers of list changes."""
    return ("session", sid)


_LIST_EVENTS = {"tools": ToolsListChanged, "prompts": PromptsListChanged, "resources": ResourcesListChanged}
_LIST_NOTIFICATIONS: dict[str, str] = {
    "tools": "notifications/tools/list_changed",
    "prompts": "notifications/prompts/list_changed",
    "resources": "notifications/resources/list_changed",
}

# Sends a notification on a handshake-era session's own stream: False if it is not open.
SessionNotifier = Callable[[str, str, "dict[str, Any] | None"], Awaitable[bool]]
# Shares what a session set up with the other replicas (gateway/session_records.py).
SessionSharer = Callable[[str, SessionChange], Awaitable[bool]]

# Handshake-era clients are told when a list changes: the capability says so.
_LIST_CHANGES = NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)


class _NotifyingServer(Server[Any]):  # pyright: ignore[reportDeprecated]
    """The SDK's server, announcing `listChanged` to 2025-11-25 clients (the session manager
    builds the `initialize` answer without notification options)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or _LIST_CHANGES, experimental_capabilities, extensions
        )


class GatewayMCPServer:
    """Builds the SDK server for one view and notifies its clients of catalog changes."""

    def __init__(self, gateway: Gateway, view_name: str, instructions: Callable[[], str | None]) -> None:
        self.gateway = gateway
        self.view_name = view_name
        self.bus = StreamBus()
        self.changes = ListChanges(gateway, lambda: (self.view, self.modern_view))
        # Handshake-era sessions open here by Mcp-Session-Id, each with the caller of its
        # latest request (whose lists it is told about); the endpoint calls `forget` when
        # a session ends.
        self._contexts: dict[str, CallContext] = {}
        # Set by the runtime: how a session is notified (the view's session manager), and
        # how what it sets up reaches the other replicas (None: it does not).
        self.notify_session: SessionNotifier | None = None
        self.share: SessionSharer | None = None
        # Resource subscriptions of handshake-era sessions: URI -> session ids.
        self._subscribers: dict[str, set[str]] = {}
        self._listen_handler = ListenHandler(self.bus)
        self.view: View | None = None  # set by the runtime on every rebuild
        self.modern_view: View | None = None
        with warnings.catch_warnings():
            # logging/setLevel is deprecated from 2026-07-28 but clients of 2025-11-25 still send it.
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            self.server: Server[Any] = _NotifyingServer(  # pyright: ignore[reportDeprecated]
                "bastion-gateway" + (f"-{view_name}" if view_name else ""),
                version=__version__,
                instructions=instructions(),
                on_list_tools=self._list_tools,
                on_call_tool=self._call_tool,
                on_list_resources=self._list_resources,
                on_list_resource_templates=self._list_templates,
                on_read_resource=self._read_resource,
                on_subscribe_resource=self._subscribe,
                on_unsubscribe_resource=self._unsubscribe,
                on_list_prompts=self._list_prompts,
                on_get_prompt=self._get_prompt,
                on_completion=self._complete,
                on_set_logging_level=self._set_level,
                on_subscriptions_listen=self._listen,
                get_tool_input_schema=self._input_schema,
            )

    async def _listen(
        self, ctx: Any, params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        """A 2026-07-28 listen stream. Its resource subscriptions are honored only for
        resources of this endpoint's view the caller may read, decided as `resources/read`
        (the acknowledgement names the honored ones): updates say what changed, and when."""
        call = _context(ctx)
        asked = params.notifications
        wanted = asked.resource_subscriptions
        watch = self.gateway.upstreams.watch
        holder = ("listen", self.view_name, object())  # this stream, for as long as it lasts

        async def tell(kind: Kind) -> None:
            await self.bus.publish_to((holder,), _LIST_EVENTS[kind]())

        try:
            if wanted:
                allowed = [uri for uri in wanted if await self._watch(call, uri, holder)]
                notifications = asked.model_copy(update={"resource_subscriptions": allowed or None})
                params = params.model_copy(update={"notifications": notifications})
            # List changes: told when what this caller may see changed, from what it sees now.
            kinds: list[Kind] = [
                kind
                for kind, wants in zip(
                    KINDS,
                    (asked.tools_list_changed, asked.prompts_list_changed, asked.resources_list_changed),
                    strict=True,
                )
                if wants
            ]
            self.changes.watch(holder, call, tell)
            await self.changes.take(holder, kinds)
            with self.bus.streaming(holder):
                return await self._listen_handler(ctx, params)
        finally:
            self.changes.forget(holder)
            watch.release(holder)

    async def _watch(self, call: CallContext, uri: str, holder: object) -> bool:
        """Whether a listen stream hears of `uri`'s updates: decided as `resources/read`,
        honored only when the upstream will send them, audited either way."""
        started = time.perf_counter()
        upstream = call.view.resource_upstream(uri)
        if upstream is None:
            reasons = ("unknown resource",)
            await self.gateway.record(
                call, "resources/read", None, uri, "error", reasons, started, "invalid_request"
            )
            return False
        decision = await self.gateway.decide(call, "resources/read", Resource(upstream=upstream, uri=uri))
        if not decision.allow:
            reasons = decision.reasons or ("no rule allows it",)
            await self.gateway.record(
                call, "resources/read", upstream, uri, "deny", reasons, started, "denied"
            )
            return False
        problem = await self.gateway.upstreams.watch.hold(upstream, uri, holder)
        reasons, outcome = ((problem,), "upstream_error") if problem else (decision.reasons, "ok")
        await self.gateway.record(call, "resources/read", upstream, uri, "allow", reasons, started, outcome)
        return problem is None

    def _input_schema(self, name: str) -> dict[str, Any] | None:
        """Lets the SDK check `Mcp-Param-*` headers against the tool's schema (2026-07-28)."""
        view = self.modern_view
        entry = view.tools.get(name) if view is not None else None
        schema = entry.definition.get("inputSchema") if entry is not None else None
        return schema if isinstance(schema, dict) else None

    def _track(self, ctx: Any) -> CallContext:
        sid = _session_id(ctx)
        call = _context(ctx)
        if sid is not None:
            self._contexts[sid] = call
            self.changes.watch(_session_key(sid), call, functools.partial(self._tell_session, sid))
        return call

    def seen(self, sid: str, call: CallContext) -> None:
        """A request of handshake-era session `sid` reached this replica for `call`'s caller
        (any request: a copy opened here for a GET stream alone runs no handler)."""
        self._contexts[sid] = call

    async def _notify(self, sid: str, method: str, params: dict[str, Any] | None = None) -> None:
        told = self.notify_session is not None and await self.notify_session(sid, method, params)
        if not told:  # a gone session is simply dropped
            logger.debug("could not send %s to session %s", method, sid[:8])
            self.forget(sid)

    async def _tell_session(self, sid: str, kind: Kind) -> None:
        await self._notify(sid, _LIST_NOTIFICATIONS[kind])

    async def _shown(self, ctx: Any, kind: Kind, listing: object, call: CallContext, since: int) -> None:
        """A handshake-era session was shown `listing` (taken for `call` from the change
        generation `since` on): it hears when that changes for it, on whichever replica
        carries its stream."""
        sid = _session_id(ctx)
        if sid is not None:
            self.changes.shown(_session_key(sid), kind, listing, call, since)
            await self._share(sid, SessionChange("listed", kind))

    async def _share(self, sid: str, change: SessionChange) -> None:
        if self.share is not None:
            await self.share(sid, change)

    async def take_on(self, sid: str, change: SessionChange) -> None:
        """What session `sid` set up on another replica (or before this replica opened its
        copy), taken on here: the lists it was shown, its resource subscriptions."""
        call = self._contexts.get(sid)
        if call is None:
            return  # not open here
        call = self.changes.current(call)
        if change.what == "listed":
            kind = change.value
            key = _session_key(sid)
            if kind in KINDS and not self.changes.showing(key, kind):
                self.changes.watch(key, call, functools.partial(self._tell_session, sid))
                await self.changes.take(key, [kind])  # what it is shown now is its starting point
            return
        uri = change.value
        upstream = call.view.resource_upstream(uri)
        if change.what == "subscribe":
            if upstream is None:
                return  # not a resource of this endpoint here (yet): nothing to watch
            self._subscribers.setdefault(uri, set()).add(sid)
            # Decided and audited where the client subscribed; this replica's upstream is
            # subscribed too, so updates reach the stream wherever the session's stream is.
            await self.gateway.upstreams.watch.hold(upstream, uri, self._holder(sid))
        elif change.what == "unsubscribe":
            self._drop_subscriber(uri, sid)
            if upstream is not None:
                await self.gateway.upstreams.watch.unhold(self._holder(sid), upstream, uri)
        # (`log_level` is the endpoint's: it decides which path the session's calls take.)

    def _drop_subscriber(self, uri: str, sid: str) -> None:
        subscribers = self._subscribers.get(uri)
        if subscribers is not None:
            subscribers.discard(sid)
            if not subscribers:
                del self._subscribers[uri]

    def missed(self, session_id: str) -> list[JSONRPCNotification]:
        """What session `session_id` is told when its stream resumes after events this
        replica does not hold (gateway/event_store.py): everything it follows may have
        changed, a `list_changed` for each kind of list it was shown and a
        `resources/updated` for each resource it subscribes to, so that it takes them
        again rather than miss a change."""
        key = _session_key(session_id)
        lists = [
            JSONRPCNotification(jsonrpc="2.0", method=_LIST_NOTIFICATIONS[kind])
            for kind in KINDS
            if self.changes.showing(key, kind)
        ]
        updates = [
            JSONRPCNotification(jsonrpc="2.0", method="notifications/resources/updated", params={"uri": uri})
            for uri in sorted(uri for uri, ids in self._subscribers.items() if session_id in ids)
        ]
        return lists + updates

    def forget(self, session_id: str) -> None:
        """Session `session_id` ended: nothing more is sent to it."""
        self._contexts.pop(session_id, None)
        self.changes.forget(_session_key(session_id))
        for uri in [u for u, ids in self._subscribers.items() if session_id in ids]:
            self._drop_subscriber(uri, session_id)
        self.gateway.upstreams.watch.release(self._holder(session_id))

    def _holder(self, session_id: str) -> tuple[str, str, str]:
        """What holds a handshake-era session's resource subscriptions upstream."""
        return ("session", self.view_name, session_id)

    async def lists_changed(self) -> None:
        """This endpoint's lists or the policy changed: tell each client what changed for it."""
        if self.view is not None and self.modern_view is not None:
            await self.changes.changed(self.view, self.modern_view)

    async def _list_tools(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        call = self._track(ctx)
        _no_cursor(params)
        since = self.changes.generation
        tools = await self.gateway.visible_tools(call)
        await self._shown(ctx, "tools", listing_of(tools), call, since)
        return types.ListToolsResult(tools=[types.Tool.model_validate(t) for t in tools])

    async def _call_tool(
        self, ctx: Any, params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        call = self._track(ctx)
        meta = _wire_meta(ctx)
        token = meta.get("progressToken") if meta else None
        relay: ProgressFn | None = None
        session = ctx.session if isinstance(ctx.session, ServerSession) else None
        if token is not None and session is not None:
            reporter = session

            async def relay_progress(progress: float, total: float | None, message: str | None) -> None:
                await reporter.report_progress(progress, total, message)

            relay = relay_progress
        entry = call.view.tools.get(params.name)
        rounds = _rounds(ctx)
        try:
            # Only a handshake-era client can be asked back; a 2026-07-28 call runs on the
            # upstream's 2026-07-28 connection, which asks with InputRequiredResult instead.
            if entry is not None and session is not None and not call.modern:
                call = dataclasses.replace(
                    call, interactive=True, close_stream=getattr(ctx, "close_sse_stream", None)
                )
                with self.gateway.upstreams.back.open(entry.upstream, session, ctx.request_id):
                    raw = await self.gateway.call_tool(
                        call, params.name, params.arguments, meta, relay, rounds=rounds
                    )
            else:
                raw = await self.gateway.call_tool(
                    call, params.name, params.arguments, meta, relay, rounds=rounds
                )
        except (CallError, BastionError) as exc:
            _raise(exc)
            raise
        return _input_required(raw) or types.CallToolResult.model_validate(raw)

    async def notify_resource_updated(self, uri: str) -> None:
        await self.bus.publish(ResourceUpdated(uri=uri))
        for sid in list(self._subscribers.get(uri, ())):
            await self._notify(sid, "notifications/resources/updated", {"uri": uri})

    async def _subscribe(self, ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
        call = self._track(ctx)
        uri = str(params.uri)
        upstream = call.view.resource_upstream(uri)
        try:
            if upstream is None:
                await self.gateway.refuse_unknown(
                    call,
                    "resources/subscribe",
                    uri,
                    None,
                    time.perf_counter(),
                    f"unknown resource {uri!r}: call resources/list first",
                    data={"uri": uri},
                )
            resource = Resource(upstream=upstream, uri=uri)
            # Decided, audited and sent upstream on the handshake-era connection, where the
            # updates arrive; the watch then keeps the upstream subscribed while any session
            # (of any endpoint) or listen stream wants it, across upstream restarts.
            await self.gateway.forward_raw(
                call, "resources/subscribe", "resources/read", resource, {"uri": uri}
            )
        except (CallError, BastionError) as exc:
            _raise(exc)
        sid = _session_id(ctx)
        if sid is not None and upstream is not None:
            self._subscribers.setdefault(uri, set()).add(sid)
            await self.gateway.upstreams.watch.hold(upstream, uri, self._holder(sid))
            await self._share(sid, SessionChange("subscribe", uri))
        return types.EmptyResult()

    async def _unsubscribe(self, ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        call = self._track(ctx)
        uri = str(params.uri)
        sid = _session_id(ctx)
        if sid is not None:
            self._drop_subscriber(uri, sid)
            await self._share(sid, SessionChange("unsubscribe", uri))
        upstream = call.view.resource_upstream(uri)
        if sid is not None and upstream is not None:
            # The upstream hears it once no other session or listen stream watches the resource.
            await self.gateway.upstreams.watch.unhold(self._holder(sid), upstream, uri)
        return types.EmptyResult()

    async def _set_level(self, ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
        # Accepted for the session: the endpoint sends its calls down the SDK path from
        # now on, which relays the upstream's log lines on each call's stream.
        self._track(ctx)
        return types.EmptyResult()

    async def _list_resources(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        call = self._track(ctx)
        _no_cursor(params)
        since = self.changes.generation
        await self._shown(ctx, "resources", await self.changes.listing(call, "resources"), call, since)
        return types.ListResourcesResult(
            resources=[types.Resource.model_validate(r) for r in call.view.resource_list]
        )

    async def _list_templates(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        call = self._track(ctx)
        _no_cursor(params)
        since = self.changes.generation
        await self._shown(ctx, "resources", await self.changes.listing(call, "resources"), call, since)
        templates = [types.ResourceTemplate.model_validate(t) for t in call.view.template_definitions()]
        return types.ListResourceTemplatesResult(resource_templates=templates)

    async def _read_resource(
        self, ctx: Any, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        call = self._track(ctx)
        meta = _wire_meta(ctx)
        try:
            raw = await self.gateway.read_resource(call, str(params.uri), meta, _rounds(ctx))
        except (CallError, BastionError) as exc:
            _raise(exc)
            raise
        return _input_required(raw) or types.ReadResourceResult.model_validate(raw)

    async def _list_prompts(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        call = self._track(ctx)
        _no_cursor(params)
        since = self.changes.generation
        prompts = await self.gateway.visible_prompts(call)
        await self._shown(ctx, "prompts", listing_of(prompts), call, since)
        return types.ListPromptsResult(prompts=[types.Prompt.model_validate(p) for p in prompts])

    async def _get_prompt(
        self, ctx: Any, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | types.InputRequiredResult:
        call = self._track(ctx)
        meta = _wire_meta(ctx)
        try:
            raw = await self.gateway.get_prompt(call, params.name, params.arguments, meta, _rounds(ctx))
        except (CallError, BastionError) as exc:
            _raise(exc)
            raise
        return _input_required(raw) or types.GetPromptResult.model_validate(raw)

    async def _complete(self, ctx: Any, params: types.CompleteRequestParams) -> types.CompleteResult:
        call = self._track(ctx)
        ref = params.ref
        body = params.model_dump(by_alias=True, exclude_none=True, mode="json")
        body.pop("_meta", None)
        # Completing an argument is reading what the prompt or resource offers: decided as such.
        resource: Resource | None = None
        action = "prompts/get"
        if isinstance(ref, types.PromptReference):
            entry = call.view.prompts.get(ref.name)
            if entry is not None:
                body["ref"] = {**body["ref"], "name": entry.name}
                resource = self.gateway.prompt_resource(entry)
        else:
            uri = str(ref.uri)
            upstream = call.view.resource_upstream(uri)
            if upstream is not None:
                resource, action = Resource(upstream=upstream, uri=uri), "resources/read"
        try:
            if resource is None:  # nothing offers it: no values, but the request still counts
                await self.gateway.spend_token(call, "completion/complete")
                return types.CompleteResult(completion=types.Completion(values=[]))
            raw = await self.gateway.forward_raw(
                call, "completion/complete", action, resource, body, _wire_meta(ctx)
            )
        except (CallError, BastionError) as exc:
            _raise(exc)
            raise
        return types.CompleteResult.model_validate(raw)
