"""`serve`: run one server over stdio or Streamable HTTP until the client or a signal ends it.

Over stdio, stdout is the protocol channel: nothing else may write to it. Logging goes
to stderr (configured by the entry point), and while the runtime opens - which may
start the embedded PostgreSQL - file descriptor 1 points at stderr, so no child
process can inherit the protocol channel as its output.

Over HTTP the server is a Starlette app under uvicorn with the MCP endpoint at `/mcp`
and an unauthenticated liveness route at `/healthz` (what the supervisor and a
Kubernetes probe poll; it says nothing about any caller or data). The socket is bound
before uvicorn starts, so a port in use fails fast with `PortInUseError` instead of a
uvicorn traceback. uvicorn runs the gateway's protocol (`bastion.http_protocol`): a
request must arrive whole within `request_read_timeout`, or it is answered 408. SIGTERM
and SIGINT shut down cleanly: the runtime (database pool, store, embedded-server hold)
is always closed.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Generator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, contextmanager, nullcontext

import anyio
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bastion import startup_objects
from bastion.errors import ConfigError, PortInUseError
from bastion.http_protocol import CoalescingHttpToolsProtocol
from bastion.mcp.build import build_server
from bastion.mcp.runtime import ServerRuntime, Transport
from bastion.mcp.spec import ServerSpec
from bastion.settings import Settings

__all__ = ["MCP_PATH", "bind_socket", "serve"]

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
HEALTH_PATH = "/healthz"
SHUTDOWN_GRACE = 5


async def serve(
    spec: ServerSpec,
    settings: Settings,
    transport: Transport = "stdio",
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    freeze_startup_objects: bool = False,
) -> None:
    """Serve `spec` until the client disconnects (stdio) or the process is signalled.

    `port=0` binds a free port; the address is logged to stderr.
    `freeze_startup_objects`: once the runtime is open, keep every object alive out of the
    collector's walks (`bastion.startup_objects`), for a process that serves only `spec`.
    """
    if transport == "http":
        # Bind before opening the database, so a taken port costs nothing.
        sock = bind_socket(host, port)
        try:
            async with (
                ServerRuntime.open(spec, settings, transport="http") as runtime,
                _background(spec, runtime),
            ):
                if freeze_startup_objects:
                    startup_objects.freeze()
                await _serve_http(spec, runtime, sock, host)
        finally:
            sock.close()
    elif transport == "stdio":
        async with AsyncExitStack() as stack:
            with _stdout_to_stderr():
                runtime = await stack.enter_async_context(
                    ServerRuntime.open(spec, settings, transport="stdio")
                )
            await stack.enter_async_context(_background(spec, runtime))
            if freeze_startup_objects:
                startup_objects.freeze()
            await _serve_stdio(spec, runtime)
    else:
        raise ConfigError(f"--transport {transport!r}: expected 'stdio' or 'http'.")


def _background(spec: ServerSpec, runtime: ServerRuntime) -> AbstractAsyncContextManager[None]:
    return spec.background(runtime) if spec.background is not None else nullcontext()


async def _serve_stdio(spec: ServerSpec, runtime: ServerRuntime) -> None:
    server = build_server(spec, runtime)
    logger.info("serving %s over stdio", spec.name)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_on_signal, tg.cancel_scope.cancel)
        await server.run_stdio_async()
        # The client closed stdin: stop watching for signals too.
        tg.cancel_scope.cancel()


async def _serve_http(spec: ServerSpec, runtime: ServerRuntime, sock: socket.socket, host: str) -> None:
    server = build_server(spec, runtime)
    started = time.monotonic()

    @server.custom_route(HEALTH_PATH, methods=["GET"])
    async def healthz(request: Request) -> Response:  # pyright: ignore[reportUnusedFunction]
        return JSONResponse(
            {"status": "ok", "server": spec.name, "uptime_s": round(time.monotonic() - started, 3)}
        )

    app = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
    config = uvicorn.Config(
        app,
        log_config=None,  # the entry point configured logging (to stderr)
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
        # The gateway's protocol: one write per answer, and a request that stalls on its
        # way in is answered 408 instead of holding its connection for ever.
        http=CoalescingHttpToolsProtocol.reading_within(runtime.settings.request_read_timeout),
    )
    web = _UvicornServer(config)
    bound_host, bound_port = sock.getsockname()[:2]
    logger.info(
        "serving %s over Streamable HTTP at http://%s:%d%s", spec.name, bound_host, bound_port, MCP_PATH
    )

    def stop() -> None:
        web.should_exit = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(_on_signal, stop)
        await web.serve(sockets=[sock])
        tg.cancel_scope.cancel()


class _UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handling.

    uvicorn re-raises a captured SIGTERM after it stops, which would kill the process
    before the runtime closes; `serve` watches the signals itself instead.
    """

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def _on_signal(action: Callable[[], None]) -> None:
    try:
        receiver = anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT)
    except (ValueError, NotImplementedError):  # not the main thread: the host owns signals
        return
    with receiver as signals:
        async for signum in signals:
            logger.info("received %s: shutting down", signal.Signals(signum).name)
            action()
            return


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port`, or PortInUseError naming the port and the fix."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(
            f"--host {host!r}: cannot resolve it ({exc.strerror}). Use an IP address or hostname."
        ) from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use. Stop the process listening there "
                f"(`ss -ltnp 'sport = :{port}'` shows it) or choose another with --port (0 picks a free one)."
            ) from None
        if exc.errno == errno.EACCES:
            raise PortInUseError(
                f"not allowed to listen on port {port} on {host} ({exc.strerror}): ports below 1024 "
                "need privileges. Choose a port above 1024 with --port."
            ) from None
        raise PortInUseError(
            f"cannot listen on {host}:{port} ({exc.strerror}). Check --host and --port."
        ) from None
    sock.setblocking(False)
    return sock


@contextmanager
def _stdout_to_stderr() -> Generator[None, None, None]:
    """Point fd 1 at stderr for the duration; children started meanwhile inherit stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
