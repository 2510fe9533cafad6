"""The relay behind `bastion mcp stdio`: a stdio MCP client to the gateway over HTTP.

Each stdin line goes to the gateway through the MCP SDK's own client transport, so
sessions, streams and notifications behave exactly as over HTTP. Before relaying
anything it asks the gateway once whether it is there and takes the key, so a wrong
key or URL ends the bridge with one line saying so.

Once relaying, every request gets an answer on stdout. A line that is not JSON-RPC, a
gateway that stops answering or a key revoked mid-session come back as JSON-RPC errors
that say what to do, with one line on stderr (clients keep it in their server log). A
session the gateway lost, because it restarted, is opened again with the client's own
`initialize` and the request sent once more. When stdin closes the bridge waits a
little for the answers still owed, ends the session and exits.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.from_thread
import anyio.lowlevel

from bastion.errors import ConfigError, RuntimeFailure

if TYPE_CHECKING:  # the SDK takes most of a second to import: only `mcp stdio` pays for it
    import httpx2
    from anyio.abc import TaskGroup
    from anyio.lowlevel import EventLoopToken
    from anyio.streams.memory import MemoryObjectSendStream
    from mcp.client._transport import ReadStream, WriteStream
    from mcp.shared.message import SessionMessage
    from mcp_types import JSONRPCMessage, JSONRPCRequest, RequestId

__all__ = ["CONNECT_WAIT", "KEY_ENV", "bridge", "check_url"]

KEY_ENV = "BASTION_API_KEY"
CONNECT_WAIT = 10.0  # seconds a bridge started with its client waits for a gateway still starting
EOF_GRACE = 30.0  # seconds the answers still owed are awaited once the client closes stdin
OPENING_WAIT = 30.0  # seconds what a client sends after its initialize waits for the answer
# One result can be far larger than the 4 MiB the gateway takes in; bounded all the same,
# since an event is held whole in memory.
MAX_SSE_EVENT = 64 * 1024 * 1024
_RETRY_STATUSES = frozenset({502, 503, 504})
_SESSION_LOST = frozenset({"Session not found", "Session terminated"})  # the SDK's words for a 404
# A stateless 2026-07-28 `server/discover`: authenticated like every request, and cheap.
_DISCOVER_HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": "server/discover",
}
_DISCOVER = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "server/discover",
    "params": {
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    },
}


EXAMPLE_URL = "http://127.0.0.1:8800/mcp"


def check_url(url: str) -> None:
    """An http(s) URL with a host and a valid port, or a ConfigError saying what was expected."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # a ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        raise ConfigError(f"--url {url!r} is not a URL ({exc}); expected e.g. {EXAMPLE_URL}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"--url {url!r}: expected an http:// or https:// URL, e.g. {EXAMPLE_URL}")


def _said(response: httpx2.Response) -> str:
    """The gateway's own words in an error answer (its JSON error, else the start of the body)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        said = body.get("error_description") or (error.get("message") if isinstance(error, dict) else None)
        if isinstance(said, str) and said:
            return said
    return response.text[:200].strip()


def _retry_after(response: httpx2.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return 0.5  # absent, or an HTTP date: soon, as for a gateway still starting


async def _check_gateway(http: httpx2.AsyncClient, url: str, wait: float) -> None:
    """Raise a ConfigError saying what to do when `url` is not a gateway that takes this key.

    A gateway that cannot answer yet (no listener, or 502/503/504 while it starts or its
    key store is unavailable) is asked again until `wait` seconds have passed, never
    sooner than its Retry-After.
    """
    import httpx2

    deadline = anyio.current_time() + wait
    while True:
        try:
            response = await http.post(url, json=_DISCOVER, headers=_DISCOVER_HEADERS)
        except httpx2.InvalidURL as exc:
            raise ConfigError(f"--url {url!r} is not a URL ({exc}); expected e.g. {EXAMPLE_URL}") from None
        except httpx2.TransportError as exc:
            delay, failure = (
                0.5,
                ConfigError(
                    f"cannot reach the gateway at {url} ({str(exc) or type(exc).__name__}). "
                    "Start Bastion with `bastion up`, or pass the gateway's MCP URL with --url."
                ),
            )
        else:
            if response.status_code not in _RETRY_STATUSES:
                break
            delay, failure = (
                _retry_after(response),
                ConfigError(f"the gateway at {url} answered HTTP {response.status_code}: {_said(response)}"),
            )
        if anyio.current_time() + delay > deadline:
            raise failure
        await anyio.sleep(delay)
    if response.status_code < 400 or response.status_code == 429:
        return  # it answered as a gateway that took the key (the discover answer itself is not needed)
    if response.status_code == 401:
        raise ConfigError(
            f"the gateway at {url} refused the API key: {_said(response) or 'unauthorized'}. Check {KEY_ENV} "
            "(`bastion keys list` shows the keys; `bastion keys create --name NAME --role ROLE` makes one)."
        )
    raise ConfigError(f"the gateway at {url} answered HTTP {response.status_code}: {_said(response)}")


def _say(line: str) -> None:
    sys.stderr.write(f"bastion mcp stdio: {line}\n")
    sys.stderr.flush()


def _rpc_error(rid: RequestId | None, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def _gateway_transport(url: str) -> httpx2.AsyncBaseTransport:
    """The gateway's HTTP as the SDK's client transport should see it.

    That transport turns only a JSON-RPC error body into an answer for a request: a
    connection error escapes its task group and a 401 becomes "Server returned an error
    response". So a POST the gateway cannot take comes back as such a body, saying what
    to do. An `initialize` opens a new session, so it never carries a lost one's id.
    """
    import httpx2
    from mcp_types import CONNECTION_CLOSED, INTERNAL_ERROR

    class GatewayTransport(httpx2.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx2.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            if request.method != "POST":
                return await self.inner.handle_async_request(request)
            if "mcp-session-id" in request.headers and _is_initialize(request.content):
                del request.headers["mcp-session-id"]
            try:
                response = await self.inner.handle_async_request(request)
            except httpx2.TransportError as exc:
                return self.answer(
                    request,
                    502,
                    CONNECTION_CLOSED,
                    f"the gateway at {url} did not answer ({str(exc) or type(exc).__name__}): is it "
                    "running? Start it with `bastion up` (or fix --url), then retry",
                )
            if response.status_code != 401:
                return response
            await response.aread()
            return self.answer(
                request,
                401,
                INTERNAL_ERROR,
                f"the gateway at {url} refused the API key: {_said(response) or 'unauthorized'}. Create "
                f"a new key with `bastion keys create --name NAME --role ROLE`, set it as {KEY_ENV} "
                "in the client's configuration and restart the client",
            )

        def answer(self, request: httpx2.Request, status: int, code: int, message: str) -> httpx2.Response:
            _say(message)
            return httpx2.Response(status, json=_rpc_error(None, code, message), request=request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    return GatewayTransport()


def _is_initialize(body: bytes) -> bool:
    return b'"initialize"' in body and json.loads(body).get("method") == "initialize"


@dataclass
class _Owed:
    """A client request the gateway has yet to answer."""

    message: JSONRPCRequest
    era: int  # the session it went out in (the bridge's re-initializations, counted)
    retried: bool = False


class _Bridge:
    """Relays the client's stdin lines to the SDK's client transport and its answers back."""

    def __init__(self, url: str, remote: WriteStream[SessionMessage], tg: TaskGroup) -> None:
        self.url = url
        self.remote = remote
        self.tg = tg
        self.out = anyio.wrap_file(sys.stdout.buffer)
        self.writing = anyio.Lock()
        self.owed: dict[RequestId, _Owed] = {}
        self.hello: JSONRPCRequest | None = None  # the client's initialize, replayed for a new session
        self.opening: anyio.Event | None = None  # set once the client's initialize is answered
        self.version: str | None = None  # negotiated by that initialize
        self.era = 0
        self.renewing = anyio.Lock()
        self.mine: dict[RequestId, MemoryObjectSendStream[JSONRPCMessage]] = {}  # the bridge's own requests
        self.param_headers: dict[str, dict[tuple[str, ...], str]] = {}  # tool -> its x-mcp-header map
        self.closing = False
        self.settled = anyio.Event()  # set when nothing is owed after stdin closed
        self.lost = False  # the SDK's transport ended on its own

    async def from_client(self, line: bytes) -> None:
        from mcp_types import INVALID_REQUEST, PARSE_ERROR, JSONRPCRequest, jsonrpc_message_adapter
        from pydantic import ValidationError

        if not line.strip():
            return
        try:
            data = json.loads(line)
        except ValueError as exc:
            _say(f"answered -32700: a stdin line is not JSON ({exc})")
            await self.write(json.dumps(_rpc_error(None, PARSE_ERROR, f"Parse error: {exc}")))
            return
        try:
            message = jsonrpc_message_adapter.validate_python(data, by_name=False)
        except ValidationError:
            rid = data.get("id") if isinstance(data, dict) else None
            rid = rid if isinstance(rid, str | int) and not isinstance(rid, bool) else None
            _say(f"answered -32600: a stdin line is not a JSON-RPC 2.0 message (id {json.dumps(rid)})")
            said = "Invalid Request: not a JSON-RPC 2.0 request, notification or response"
            await self.write(json.dumps(_rpc_error(rid, INVALID_REQUEST, said)))
            return
        initialize = isinstance(message, JSONRPCRequest) and message.method == "initialize"
        if self.opening is not None and not initialize:
            # The session's id comes with the initialize answer: what a client piped after its
            # initialize waits for it, or it would reach the gateway without one.
            with anyio.move_on_after(OPENING_WAIT):
                await self.opening.wait()
        if isinstance(message, JSONRPCRequest):
            if initialize:
                self.hello = message
                self.opening = anyio.Event()
            self.owed[message.id] = _Owed(message, self.era)
        await self.send(message)

    async def send(self, message: JSONRPCMessage) -> None:
        from mcp.shared.message import ClientMessageMetadata, SessionMessage

        await self.remote.send(
            SessionMessage(message, metadata=ClientMessageMetadata(headers=self.headers(message)))
        )

    def headers(self, message: JSONRPCMessage) -> dict[str, str] | None:
        """The HTTP headers the message's protocol version asks for."""
        from mcp.shared.inbound import (
            MCP_METHOD_HEADER,
            MCP_NAME_HEADER,
            MCP_PROTOCOL_VERSION_HEADER,
            NAME_BEARING_METHODS,
            encode_header_value,
            mcp_param_headers,
        )
        from mcp_types import PROTOCOL_VERSION_META_KEY, JSONRPCNotification, JSONRPCRequest

        if not isinstance(message, JSONRPCRequest | JSONRPCNotification):
            return {MCP_PROTOCOL_VERSION_HEADER: self.version} if self.version else None
        params = message.params or {}
        meta = params.get("_meta")
        version = meta.get(PROTOCOL_VERSION_META_KEY) if isinstance(meta, dict) else None
        if not isinstance(version, str):  # handshake era: the version the session negotiated
            if message.method == "initialize" or not self.version:
                return None
            return {MCP_PROTOCOL_VERSION_HEADER: self.version}
        # 2026-07-28: every request names its version and method, and some their target, in headers.
        headers = {MCP_PROTOCOL_VERSION_HEADER: version, MCP_METHOD_HEADER: message.method}
        name = params.get(NAME_BEARING_METHODS.get(message.method, ""))
        if isinstance(name, str):
            headers[MCP_NAME_HEADER] = encode_header_value(name)
            arguments = params.get("arguments")
            if message.method == "tools/call" and name in self.param_headers and isinstance(arguments, dict):
                headers.update(mcp_param_headers(self.param_headers[name], arguments))
        return headers

    async def from_gateway(self, remote: ReadStream[SessionMessage | Exception]) -> None:
        from mcp_types import JSONRPCError, JSONRPCResponse

        async for item in remote:
            if isinstance(item, Exception):
                _say(str(item))
                continue
            message = item.message
            owed = None
            if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id is not None:
                if (mine := self.mine.pop(message.id, None)) is not None:
                    mine.send_nowait(message)
                    continue
                owed = self.owed.get(message.id)
                gone = isinstance(message, JSONRPCError) and message.error.message in _SESSION_LOST
                if owed is not None and gone:
                    if self.hello is not None and not owed.retried:
                        owed.retried = True
                        self.tg.start_soon(self.renew_and_retry, owed)
                    else:
                        await self.fail(owed, "the request, sent again, found no session either")
                    continue
                if owed is not None:
                    self.learn(owed.message, message)
            await self.write(message.model_dump_json(by_alias=True, exclude_unset=True))
            if owed is not None:
                if owed.message.method == "initialize" and self.opening is not None:
                    self.opening.set()
                    self.opening = None
                self.settle(owed.message.id)  # after the write: the last answer owed ends the bridge
        if not self.closing:
            self.lost = True
            self.tg.cancel_scope.cancel()

    def learn(self, request: JSONRPCRequest, answer: JSONRPCMessage) -> None:
        """Keep what later messages' headers need: the negotiated version, tools' header maps."""
        from mcp.shared.inbound import find_invalid_x_mcp_header, x_mcp_header_map
        from mcp_types import JSONRPCResponse

        if not isinstance(answer, JSONRPCResponse):
            return
        if request.method == "initialize" and isinstance(
            version := answer.result.get("protocolVersion"), str
        ):
            self.version = version
        if request.method == "tools/list" and isinstance(tools := answer.result.get("tools"), list):
            for tool in tools:
                if isinstance(tool, dict) and isinstance(name := tool.get("name"), str):
                    schema = tool.get("inputSchema")
                    valid = find_invalid_x_mcp_header(schema) is None
                    self.param_headers[name] = x_mcp_header_map(schema) if valid else {}

    async def renew_and_retry(self, owed: _Owed) -> None:
        """Open a new session with the client's initialize (the old one is gone) and resend."""
        async with self.renewing:
            if owed.era == self.era:  # nobody renewed the session since this request went out
                refused = await self.renew()
                if refused is not None:
                    await self.fail(owed, refused)
                    return
        owed.era = self.era
        await self.send(owed.message)

    async def renew(self) -> str | None:
        """A new session for the client, or why the gateway refused one."""
        from mcp_types import (
            JSONRPCError,
            JSONRPCMessage,
            JSONRPCNotification,
            JSONRPCRequest,
            JSONRPCResponse,
        )

        assert self.hello is not None
        rid = f"bastion-stdio-renew-{self.era + 1}"
        answers, answer = anyio.create_memory_object_stream[JSONRPCMessage](1)
        self.mine[rid] = answers
        await self.send(JSONRPCRequest(jsonrpc="2.0", id=rid, method="initialize", params=self.hello.params))
        reply = await answer.receive()
        if not isinstance(reply, JSONRPCResponse):
            return reply.error.message if isinstance(reply, JSONRPCError) else "no answer"
        self.era += 1
        if isinstance(version := reply.result.get("protocolVersion"), str):
            self.version = version
        await self.send(JSONRPCNotification(jsonrpc="2.0", method="notifications/initialized"))
        return None

    async def fail(self, owed: _Owed, why: str) -> None:
        from mcp_types import CONNECTION_CLOSED

        message = (
            f"the gateway at {self.url} no longer has this session (it restarted, or the session "
            f"expired) and a new one failed: {why}. Restart the MCP client to reconnect"
        )
        _say(message)
        await self.write(json.dumps(_rpc_error(owed.message.id, CONNECTION_CLOSED, message)))
        self.settle(owed.message.id)

    def settle(self, rid: RequestId) -> None:
        self.owed.pop(rid, None)
        if self.closing and not self.owed:
            self.settled.set()

    async def write(self, line: str) -> None:
        async with self.writing:
            try:
                await self.out.write(line.encode() + b"\n")
                await self.out.flush()
            except (OSError, ValueError):  # stdout is closed: the client is gone, so is the point of going on
                self.closing = True
                self.tg.cancel_scope.cancel()

    async def drain(self) -> None:
        """After stdin closed: wait a little for the answers still owed."""
        self.closing = True
        if self.owed:
            with anyio.move_on_after(EOF_GRACE):
                await self.settled.wait()
        if self.owed:
            _say(f"stdin closed; stopped waiting for {len(self.owed)} answer(s) after {EOF_GRACE:g} s")


def _read_lines(lines: MemoryObjectSendStream[bytes], token: EventLoopToken) -> None:
    """Feed stdin's lines to the bridge (in a daemon thread: a blocked read never holds up exit)."""
    # A reader of its own: interpreter shutdown needs sys.stdin's lock, which a blocked read holds.
    with (
        open(sys.stdin.fileno(), "rb", closefd=False) as stdin,
        contextlib.suppress(RuntimeError, anyio.BrokenResourceError, anyio.ClosedResourceError),
    ):
        for line in stdin:
            anyio.from_thread.run(lines.send, line, token=token)
        anyio.from_thread.run(lines.aclose, token=token)


async def bridge(url: str, key: str, wait: float) -> None:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {key}"}
    timeout = httpx2.Timeout(30.0, read=3600)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        await _check_gateway(http, url, wait)
    send_lines, lines = anyio.create_memory_object_stream[bytes]()
    token = anyio.lowlevel.current_token()
    threading.Thread(target=_read_lines, args=(send_lines, token), daemon=True, name="stdin").start()
    bridge: _Bridge | None = None
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout, transport=_gateway_transport(url)) as http,
        streamable_http_client(url, http_client=http, max_sse_event_size=MAX_SSE_EVENT) as (
            remote_read,
            remote_write,
        ),
        anyio.create_task_group() as tg,
    ):
        bridge = _Bridge(url, remote_write, tg)
        tg.start_soon(bridge.from_gateway, remote_read)
        async with lines:
            async for line in lines:
                await bridge.from_client(line)
        await bridge.drain()
        tg.cancel_scope.cancel()
    # Leaving the SDK's transport ended the session (its DELETE).
    if bridge is not None and bridge.lost:
        raise RuntimeFailure(
            f"the connection to the gateway at {url} ended; restart the MCP client to reconnect"
        )
