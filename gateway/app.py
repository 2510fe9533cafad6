"""The gateway's Starlette application.

Today it serves the operational routes: `/healthz` (the process is alive),
`/readyz` (the database and the store answer) and `/metrics` (Prometheus, for
loopback scrapers or a bearer token). The MCP endpoint, REST API and chat mount
here as they land.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion import __version__
from bastion.components import kernel_migrations
from bastion.db.database import Database
from bastion.logs import request_id
from bastion.metrics import CONTENT_TYPE_LATEST, HTTP_REQUEST_SECONDS, HTTP_REQUESTS, READY, render
from bastion.settings import Settings
from bastion.stores import Store, open_store

__all__ = ["GatewayState", "create_app"]

logger = logging.getLogger(__name__)

READY_TIMEOUT = 2.0


@dataclass
class GatewayState:
    settings: Settings
    database: Database
    store: Store
    started: float


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


def _state(request: Request) -> GatewayState:
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
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


async def metrics(request: Request) -> Response:
    state = _state(request)
    token = state.settings.metrics_token
    if not _is_loopback(request):
        supplied = request.headers.get("authorization", "")
        expected = f"Bearer {token.get_secret_value()}" if token else None
        if expected is None or not hmac.compare_digest(supplied.encode(), expected.encode()):
            return PlainTextResponse(
                "metrics need a loopback client or `Authorization: Bearer <BASTION_METRICS_TOKEN>`\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="bastion-metrics"'},
            )
    return Response(render(), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings) -> Starlette:
    """The gateway application for one instance; the database is opened in its lifespan."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, Any]]:
        database = Database(settings)
        await database.open(migrations=[kernel_migrations()])
        try:
            store = await open_store(settings, database)
        except BaseException:
            await database.close()
            raise
        try:
            logger.info("gateway ready on %s:%s", settings.host, settings.port)
            yield {"gateway": GatewayState(settings, database, store, time.monotonic())}
        finally:
            await store.close()
            await database.close()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(RequestContextMiddleware)])
