"""The gateway's ASGI application.

`/mcp` and `/mcp/<virtual server>` go straight to the MCP endpoint (the hot path,
with its own authentication). Starlette serves the operational routes: `/healthz`
(the process is alive), `/readyz` (database, store, policy and upstreams) and
`/metrics` (Prometheus, for loopback scrapers or a bearer token).
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion import __version__, startup_objects
from bastion.logs import request_id
from bastion.metrics import CONTENT_TYPE_LATEST, HTTP_REQUEST_SECONDS, HTTP_REQUESTS, READY, render
from bastion.net import LOOPBACK_NAMES, authority_host, is_loopback
from bastion.settings import Settings
from gateway.runtime import GatewayRuntime, open_gateway, readiness

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

READY_TIMEOUT = 2.0


class RequestContextMiddleware:
    """Give every request an id (kept from `X-Request-Id` when sent) and record metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        token = request_id.set(rid)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(template, str(status)).inc()
            HTTP_REQUEST_SECONDS.labels(template).observe(time.perf_counter() - started)
            request_id.reset(token)


def _state(request: Request) -> GatewayRuntime:
    return request.state.gateway


async def healthz(request: Request) -> Response:
    state = _state(request)
    return JSONResponse(
        {"status": "ok", "version": __version__, "uptime_s": round(time.monotonic() - state.started, 3)}
    )


async def _check(name: str, probe: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with anyio.fail_after(READY_TIMEOUT):
            await probe()
    except Exception as exc:
        READY.labels(name).set(0)
        return {"ok": False, "error": str(exc) or type(exc).__name__}
    READY.labels(name).set(1)
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


async def readyz(request: Request) -> Response:
    state = _state(request)

    async def database() -> None:
        async with state.database.pool.connection() as conn:
            await conn.execute("SELECT 1")

    checks = {
        "database": await _check("database", database),
        "store": await _check("store", state.store.ping),
    }
    ready = all(check["ok"] for check in checks.values())
    body: dict[str, Any] = {"ready": ready, "checks": checks}
    details = readiness(state)
    READY.labels("policy").set(1 if details["policy"]["ok"] else 0)
    degraded = not details["policy"]["ok"] or any(
        u["state"] != "ready" for u in details["upstreams"].values()
    )
    body["status"] = "degraded" if ready and degraded else ("ok" if ready else "unavailable")
    if not _operator(request):
        # A probe needs the status; error texts (paths, URLs, hosts) are for operators only.
        return JSONResponse({"ready": ready, "status": body["status"]}, status_code=200 if ready else 503)
    body["policy"] = details["policy"]
    body["upstreams"] = details["upstreams"]
    return JSONResponse(body, status_code=200 if ready else 503)


def _operator(request: Request) -> bool:
    """An operator: a client on this machine that names it in `Host` (a web page rebinding
    its own name to 127.0.0.1 names itself), or one with the metrics token."""
    settings = _state(request).settings
    token = settings.metrics_token
    if token is not None:
        supplied = request.headers.get("authorization", "")
        if hmac.compare_digest(supplied.encode(), f"Bearer {token.get_secret_value()}".encode()):
            return True
    if not is_loopback(request.client.host if request.client else None):
        return False
    host = authority_host(request.headers.get("host", "").lower())
    allowed = {h.lower() for h in settings.allowed_hosts}
    return host is not None and (host in LOOPBACK_NAMES or host in allowed)


async def metrics(request: Request) -> Response:
    if not _operator(request):
        return PlainTextResponse(
            "metrics need a client on this machine that names it in Host (localhost, 127.0.0.1) "
            "or `Authorization: Bearer <BASTION_METRICS_TOKEN>`\n",
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="bastion-metrics"'},
        )
    return Response(render(), media_type=CONTENT_TYPE_LATEST)


class _Router:
    """MCP paths go straight to the endpoint (the hot path); the rest to Starlette."""

    def __init__(self, app: Starlette, holder: dict[str, GatewayRuntime]) -> None:
        self.app = app
        self.holder = holder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == "/mcp" or path.startswith("/mcp/"):
                runtime = self.holder.get("runtime")
                if runtime is None:
                    await PlainTextResponse("starting", status_code=503)(scope, receive, send)
                    return
                await runtime.endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(settings: Settings, *, freeze_startup_objects: bool = False) -> ASGIApp:
    """The gateway application for one instance; everything opens in its lifespan.

    `freeze_startup_objects`: once started, keep every object alive out of the collector's
    walks (`bastion.startup_objects`), for a process that runs only this gateway.
    """
    holder: dict[str, GatewayRuntime] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, Any]]:
        async with open_gateway(settings) as runtime:
            runtime.started = time.monotonic()
            holder["runtime"] = runtime
            if freeze_startup_objects:
                startup_objects.freeze()
            logger.info("gateway ready on %s:%s", settings.host, settings.port)
            try:
                yield {"gateway": runtime}
            finally:
                holder.pop("runtime", None)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(RequestContextMiddleware)])
    return _Router(app, holder)
