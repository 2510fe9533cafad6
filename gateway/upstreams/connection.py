"""One live connection to an upstream MCP server, over stdio or Streamable HTTP.

The MCP SDK does the protocol work (transports, `initialize`, request correlation,
progress and cancellation). The gateway forwards raw JSON-RPC params through the
SDK's dispatcher (`send_raw_request`), so results pass through as the upstream sent
them, with no re-validation on the hot path. Concurrent requests share the one
connection and are multiplexed by request id.

A connection speaks one protocol era, as a stdio server serves one era per
connection: the handshake era (`initialize`, 2025-11-25) for every upstream, and for
upstreams that also speak 2026-07-28 a second, modern connection (`server/discover`)
that serves the gateway's 2026-07-28 clients. On the modern connection each request
carries its client's own envelope (capabilities, info, log level), so the upstream
asks a client only for what that client declared, and multi-round-trip fields
(`inputResponses`, `requestState`, `InputRequiredResult`) pass through untouched; the
catalog's change notifications arrive on a `subscriptions/listen` stream.

The read side of the transport is relayed through a small pump so the connection
knows the moment the upstream goes away: every request in flight then fails at once
with `CONNECTION_CLOSED`, and `closed` is set for the manager to restart it.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import httpx2
from anyio.abc import TaskStatus
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.subscriptions import PromptsListChanged, ResourcesListChanged, ToolsListChanged, listen
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    encode_header_value,
    find_invalid_x_mcp_header,
    mcp_param_headers,
    x_mcp_header_map,
)
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.message import SessionMessage
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PROTOCOL_VERSION_META_KEY,
)

from gateway.back_channel import BackChannels
from gateway.upstreams.direct import DirectHTTPClient, strip_upstream_envelope, supports_modern
from gateway.upstreams.http_transport import streamable_http_client

__all__ = ["NOT_CONNECTED", "Catalog", "ModernUnsupportedError", "UpstreamConnection", "UpstreamSpec"]

logger = logging.getLogger(__name__)

NOT_CONNECTED = -32001  # the code of "upstream unavailable" answers: the caller may retry
MAX_LIST_PAGES = 1000  # pages of one list an upstream may send before the rest is ignored

ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]
CloseStreamFn = Callable[[], Awaitable[None]]
NotifyFn = Callable[[str, types.ServerNotification], Awaitable[None]]

CLIENT_INFO = types.Implementation(name="bastion-gateway", version="1")
_CLIENT_INFO_WIRE = CLIENT_INFO.model_dump(mode="json", exclude_none=True)
HANDSHAKE_VERSION = "2025-11-25"
DISCOVER_TIMEOUT = 15.0
_LIST_CHANGED = {
    "notifications/tools/list_changed",
    "notifications/resources/list_changed",
    "notifications/prompts/list_changed",
}


_CHANGE_EVENTS: dict[type[Any], Callable[[], types.ServerNotification]] = {
    ToolsListChanged: types.ToolListChangedNotification,
    PromptsListChanged: types.PromptListChangedNotification,
    ResourcesListChanged: types.ResourceListChangedNotification,
}


class ModernUnsupportedError(Exception):
    """The upstream does not speak 2026-07-28: it refused `server/discover` or never answered it."""


@dataclass(frozen=True)
class UpstreamSpec:
    """How to reach one upstream, and whether it is a built-in Bastion server."""

    name: str
    transport: Literal["stdio", "http"]
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict[str, str])
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict[str, str])
    builtin: bool = False  # built-in servers get a signed caller context in `_meta`
    # Also open a 2026-07-28 connection for the gateway's 2026-07-28 clients, when the
    # upstream speaks that era (over stdio: a second process).
    dual_era: bool = False
    timeout: float = 300.0  # seconds a single request may take
    # Calls in flight at once, both eras together (None: no limit); a call running longer
    # than `slow_call` seconds stops counting (None: it counts until it ends).
    max_concurrency: int | None = None
    slow_call: float | None = None
    # Built-in servers refuse requests without a caller context: listing the catalog
    # is done as the gateway itself, with a context this returns.
    list_meta: Callable[[], Mapping[str, Any]] | None = None


@dataclass
class Catalog:
    """What one upstream offers, as the raw dicts it listed."""

    tools: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    resources: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    templates: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    prompts: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    instructions: str | None = None
    server_info: dict[str, Any] = field(default_factory=dict[str, Any])
    capabilities: dict[str, Any] = field(default_factory=dict[str, Any])


class UpstreamConnection:
    """Connect, list, forward requests; `run()` returns when the upstream goes away."""

    def __init__(
        self,
        spec: UpstreamSpec,
        *,
        modern: bool = False,
        on_notification: NotifyFn | None = None,
        back: BackChannels | None = None,
    ) -> None:
        self.spec = spec
        self.modern = modern
        self.back = back
        self.catalog = Catalog()
        self.closed = anyio.Event()
        self.protocol_version: str | None = None
        self._on_notification = on_notification
        self._dispatcher: JSONRPCDispatcher[Any] | None = None
        self._session: ClientSession | None = None
        self._headers: dict[str, str] = {}
        self.direct: DirectHTTPClient | None = None
        self._direct_tools: frozenset[str] = frozenset()
        self._param_headers: dict[str, dict[tuple[str, ...], str]] = {}
        # Calls whose client can resume a closed stream: our request id -> close the client's.
        self._stream_relays: dict[types.RequestId, CloseStreamFn] = {}
        self._relay_ids = itertools.count(1)

    @property
    def ready(self) -> bool:
        return self._dispatcher is not None and not self.closed.is_set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect and initialise, report started, then stay until the upstream closes."""
        async with AsyncExitStack() as stack:
            read, write = await self._open_transport(stack)
            relay_send, relay_receive = anyio.create_memory_object_stream[SessionMessage | Exception](64)
            dispatcher: JSONRPCDispatcher[Any] = JSONRPCDispatcher(relay_receive, write)
            session = ClientSession(
                dispatcher=dispatcher,
                client_info=CLIENT_INFO,
                message_handler=self._handle_message,
                # A modern upstream asks its client with InputRequiredResult, never a request.
                **({} if self.modern else self._callbacks()),
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._pump, read, relay_send)
                async with session:
                    if self.modern:
                        await self._discover(session)
                    else:
                        await self._initialize(session)
                    self._dispatcher = dispatcher
                    self._session = session
                    await self.refresh()
                    if self.modern:
                        await tg.start(self._listen, session)
                    if self.spec.transport == "http":
                        await self._try_direct(stack)
                    task_status.started()
                    await self.closed.wait()
                    tg.cancel_scope.cancel()
        self._dispatcher = None
        self._session = None
        self.direct = None

    async def _initialize(self, session: ClientSession) -> None:
        with anyio.fail_after(60):
            result = await session.initialize()
        self.protocol_version = result.protocol_version
        if self.spec.transport == "http":
            self._headers = {"mcp-protocol-version": result.protocol_version}
        self.catalog.instructions = result.instructions
        self.catalog.server_info = result.server_info.model_dump(mode="json", exclude_none=True)
        self.catalog.capabilities = result.capabilities.model_dump(
            mode="json", by_alias=True, exclude_none=True
        )

    async def _discover(self, session: ClientSession) -> None:
        try:
            with anyio.fail_after(DISCOVER_TIMEOUT):
                result = await session.discover()
        except MCPError as exc:
            if exc.code in (CONNECTION_CLOSED, INTERNAL_ERROR):
                raise  # it went away or failed (an HTTP 5xx): a restart will ask again
            raise ModernUnsupportedError(
                f"upstream {self.spec.name!r} does not speak 2026-07-28 ({exc.error.message})"
            ) from None
        except (TimeoutError, RuntimeError) as exc:
            reason = "no answer to server/discover" if isinstance(exc, TimeoutError) else str(exc)
            raise ModernUnsupportedError(
                f"upstream {self.spec.name!r} does not speak 2026-07-28 ({reason})"
            ) from None
        self.protocol_version = session.protocol_version
        self.catalog.instructions = result.instructions
        info = session.server_info
        self.catalog.server_info = info.model_dump(mode="json", exclude_none=True) if info else {}
        self.catalog.capabilities = result.capabilities.model_dump(
            mode="json", by_alias=True, exclude_none=True
        )

    async def _listen(self, session: ClientSession, *, task_status: TaskStatus[None]) -> None:
        """Follow the upstream's list changes (2026-07-28 delivers them on a listen stream only)."""
        caps = self.catalog.capabilities
        wanted = {
            kind: bool((caps.get(kind) or {}).get("listChanged"))
            for kind in ("tools", "prompts", "resources")
        }
        started = False
        try:
            if any(wanted.values()):
                async with listen(
                    session,
                    tools_list_changed=wanted["tools"],
                    prompts_list_changed=wanted["prompts"],
                    resources_list_changed=wanted["resources"],
                ) as subscription:
                    task_status.started()
                    started = True
                    async for event in subscription:
                        notice = _CHANGE_EVENTS.get(type(event))
                        if notice is not None:
                            await self._handle_message(notice())
        except Exception as exc:  # the connection serves on, without change notifications
            logger.warning("upstream %s: its list-change stream ended: %s", self.spec.name, exc)
        if not started:
            task_status.started()

    async def _try_direct(self, stack: AsyncExitStack) -> None:
        """Use the lean modern-era client for plain requests when the upstream speaks it."""
        assert self.spec.url is not None
        client = DirectHTTPClient(self.spec.url, self.spec.headers, timeout=self.spec.timeout)
        stack.push_async_callback(client.close)
        found = None
        # An upstream that never answers has no direct path; it must not hold up the start.
        with anyio.move_on_after(DISCOVER_TIMEOUT):
            found = await client.discover()
        if found is not None and supports_modern(found):
            self.direct = client
            self._index_direct_tools()
            logger.info("upstream %s speaks 2026-07-28: plain calls take the direct path", self.spec.name)

    def _index_direct_tools(self) -> None:
        if self.direct is not None:
            self._direct_tools = frozenset(
                str(t.get("name"))
                for t in self.catalog.tools
                if self.direct.eligible("tools/call", t.get("inputSchema"))
            )

    def _callbacks(self) -> dict[str, Any]:
        """Relay the upstream's requests to the calling client (see gateway.back_channel)."""
        back, name, timeout = self.back, self.spec.name, self.spec.timeout
        if back is None:
            return {}

        async def elicit(context: Any, params: types.ElicitRequestParams) -> Any:
            return await back.relay(
                name, types.ElicitRequest(params=params), types.ElicitResult, answer_within=timeout
            )

        async def sample(context: Any, params: types.CreateMessageRequestParams) -> Any:
            return await back.relay(
                name,
                types.CreateMessageRequest(params=params),
                types.CreateMessageResult,
                answer_within=timeout,
            )

        async def roots(context: Any) -> Any:
            return await back.relay(
                name, types.ListRootsRequest(), types.ListRootsResult, answer_within=timeout
            )

        async def log(params: types.LoggingMessageNotificationParams) -> None:
            await back.log(name, params)

        return {
            "elicitation_callback": elicit,
            "sampling_callback": sample,
            "list_roots_callback": roots,
            "logging_callback": log,
        }

    async def _open_transport(self, stack: AsyncExitStack) -> tuple[Any, Any]:
        spec = self.spec
        if spec.transport == "stdio":
            assert spec.command is not None
            params = StdioServerParameters(
                command=spec.command, args=list(spec.args), env=dict(spec.env) or None, cwd=spec.cwd
            )
            # The child's stderr is ours: it lands in the gateway log.
            return await stack.enter_async_context(stdio_client(params, errlog=sys.stderr))
        assert spec.url is not None
        client = await stack.enter_async_context(
            httpx2.AsyncClient(headers=dict(spec.headers), timeout=httpx2.Timeout(30.0, read=spec.timeout))
        )
        return await stack.enter_async_context(
            streamable_http_client(spec.url, http_client=client, on_stream_closed=self._stream_closed)
        )

    async def _stream_closed(self, request_id: types.RequestId) -> None:
        """The upstream closed a call's SSE stream mid-call: close the calling client's too."""
        close = self._stream_relays.get(request_id)
        if close is not None:
            await close()

    async def _pump(self, read: Any, relay: Any) -> None:
        """Relay transport messages to the dispatcher; on EOF mark the connection closed."""
        era = " (2026-07-28)" if self.modern else ""
        by_gateway = False
        try:
            async with relay:
                async for item in read:
                    if isinstance(item, Exception):
                        logger.warning("upstream %s%s transport error: %s", self.spec.name, era, item)
                    await relay.send(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        except anyio.get_cancelled_exc_class():
            by_gateway = True  # shutdown, or an era the upstream does not speak
            raise
        finally:
            self.closed.set()
            if by_gateway:
                logger.debug("upstream %s%s: connection closed by the gateway", self.spec.name, era)
            else:
                logger.warning("upstream %s%s closed its connection", self.spec.name, era)

    async def _handle_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            return
        method = getattr(message, "method", "")
        if method in _LIST_CHANGED:
            try:
                await self.refresh()
            except Exception as exc:  # a failed refresh keeps the old catalog
                logger.warning("upstream %s: refreshing its catalog failed: %s", self.spec.name, exc)
        if self._on_notification is not None:
            await self._on_notification(self.spec.name, message)

    async def refresh(self) -> None:
        """Re-list tools, resources, templates and prompts (each only if offered)."""
        caps = self.catalog.capabilities
        # Listed whole before any of it is used: a refresh that fails keeps the old catalog.
        tools = await self._list_all("tools/list", "tools") if "tools" in caps else []
        resources: list[dict[str, Any]] = []
        templates: list[dict[str, Any]] = []
        if "resources" in caps:
            resources = await self._list_all("resources/list", "resources")
            try:
                templates = await self._list_all("resources/templates/list", "resourceTemplates")
            except MCPError as exc:
                if exc.error.code != METHOD_NOT_FOUND:
                    raise
                # Templates are optional: a server with plain resources only need not list them.
        prompts = await self._list_all("prompts/list", "prompts") if "prompts" in caps else []
        self.catalog.tools, self.catalog.resources = tools, resources
        self.catalog.templates, self.catalog.prompts = templates, prompts
        self._index_direct_tools()
        if self.modern and self.spec.transport == "http":
            self._param_headers = {
                str(tool.get("name")): x_mcp_header_map(schema)
                for tool in self.catalog.tools
                if (schema := tool.get("inputSchema")) and find_invalid_x_mcp_header(schema) is None
            }

    async def _list_all(self, method: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_LIST_PAGES):  # bounded: a server that pages forever is cut off
            params: dict[str, Any] = {"cursor": cursor} if cursor else {}
            if self.spec.list_meta is not None:
                params["_meta"] = dict(self.spec.list_meta())
            result = await self.request(method, params, timeout=60)
            items.extend(result.get(key) or [])
            cursor = result.get("nextCursor")
            if not cursor:
                return items
            if cursor in seen:
                logger.warning(
                    "upstream %s repeated a %s cursor; keeping the pages so far", self.spec.name, method
                )
                return items
            seen.add(str(cursor))
        logger.warning(
            "upstream %s: %s went past %d pages; keeping those", self.spec.name, method, MAX_LIST_PAGES
        )
        return items

    async def request(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        *,
        on_progress: ProgressFn | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - forwarded to the SDK's per-request timeout
        envelope: Mapping[str, Any] | None = None,
        interactive: bool = False,
        on_stream_closed: CloseStreamFn | None = None,
    ) -> dict[str, Any]:
        """Send one request and return the raw result; raises MCPError on an error reply.

        `envelope`: the calling client's 2026-07-28 `_meta` envelope, forwarded on a modern
        connection (the handshake era has none per request). `interactive`: the calling
        client may be asked back (elicitation, sampling, roots, log lines), so the request
        stays on this connection's session, never the direct path. `on_stream_closed`:
        called when an HTTP upstream closes the request's SSE stream mid-call.
        """
        dispatcher = self._dispatcher
        if dispatcher is None or self.closed.is_set():
            raise MCPError(code=NOT_CONNECTED, message="not connected right now; retry shortly")
        direct = self.direct
        if (
            direct is not None
            and on_progress is None
            and not interactive
            and on_stream_closed is None
            and self._takes_direct_path(method, params)
        ):
            assert params is not None
            if envelope:
                params = {**params, "_meta": {**envelope, **(params.get("_meta") or {})}}
            return await direct.request(method, params)
        opts: dict[str, Any] = {"timeout": timeout or self.spec.timeout}
        if self.modern:
            params, opts["headers"] = self._stamp_modern(method, params, envelope)
        elif self._headers:
            opts["headers"] = dict(self._headers)
        if on_progress is not None:
            opts["on_progress"] = on_progress
        relay_id: str | None = None
        if on_stream_closed is not None and self.spec.transport == "http" and not self.modern:
            # Our own id for the request, so the transport's report names a call we know.
            relay_id = f"relay-{next(self._relay_ids)}"
            opts["request_id"] = relay_id
            self._stream_relays[relay_id] = on_stream_closed
        try:
            result = await dispatcher.send_raw_request(method, params, opts)  # type: ignore[arg-type]
        except MCPError as exc:
            if self.spec.transport == "http" and not self.modern and _session_gone(exc):
                # The server forgot the session (it restarted): nothing ran. This connection
                # is over; the manager opens a new one with a new session.
                logger.warning("upstream %s lost its session (%s); reconnecting", self.spec.name, exc)
                self.closed.set()
                raise MCPError(
                    code=exc.error.code,
                    message="its session ended (the server restarted?); reconnecting, retry the call",
                ) from None
            raise
        finally:
            if relay_id is not None:
                del self._stream_relays[relay_id]
        if self.modern:
            strip_upstream_envelope(result)
        return result

    def _takes_direct_path(self, method: str, params: Mapping[str, Any] | None) -> bool:
        if params is None:
            return False
        if method == "tools/call":
            return params.get("name") in self._direct_tools
        return method in ("resources/read", "prompts/get")

    def _stamp_modern(
        self, method: str, params: Mapping[str, Any] | None, envelope: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The 2026-07-28 `_meta` envelope and HTTP headers for one request."""
        version = self.protocol_version or ""
        out = dict(params or {})
        meta = {**(envelope or {}), **(out.get("_meta") or {})}
        meta[PROTOCOL_VERSION_META_KEY] = version
        meta.setdefault(CLIENT_INFO_META_KEY, _CLIENT_INFO_WIRE)
        meta.setdefault(CLIENT_CAPABILITIES_META_KEY, {})
        out["_meta"] = meta
        headers = {MCP_PROTOCOL_VERSION_HEADER: version, MCP_METHOD_HEADER: method}
        key = NAME_BEARING_METHODS.get(method)
        if key is not None and isinstance(name := out.get(key), str):
            headers[MCP_NAME_HEADER] = encode_header_value(name)
            header_map = self._param_headers.get(name) if method == "tools/call" else None
            if header_map:
                headers.update(mcp_param_headers(header_map, out.get("arguments") or {}))
        return out, headers

    async def notify(self, method: str, params: Mapping[str, Any] | None) -> None:
        if self._dispatcher is not None and not self.closed.is_set():
            await self._dispatcher.notify(method, params)


def default_stdio_env() -> dict[str, str]:
    """Environment passed to built-in stdio servers (the SDK adds a safe base)."""
    keep = ("BASTION_", "DATABASE_URL", "REDIS_URL", "OPA_URL", "PATH", "HOME", "LANG", "LC_", "XDG_")
    return {k: v for k, v in os.environ.items() if k.startswith(keep)}


def _session_gone(exc: MCPError) -> bool:
    """The error a Streamable HTTP server answers (HTTP 404) for a session it does not know."""
    message = exc.error.message.lower()
    return (
        exc.error.code == INVALID_REQUEST
        and "session" in message
        and ("not found" in message or "terminated" in message)
    )
