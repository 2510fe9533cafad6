"""The health report every server gives: database, store, server, plus its own checks.

Each check is bounded by a timeout and reports `ok` or `down` with the reason; the
overall `status` is `ok` only when every check is. A failing check never raises: a
health report that crashes tells an operator less than one that says what is down.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from bastion.mcp.runtime import ServerRuntime

__all__ = ["CHECK_TIMEOUT", "check_health"]

logger = logging.getLogger(__name__)

CHECK_TIMEOUT = 5.0


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _failure(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT:g}s"
    return str(exc).strip() or type(exc).__name__


async def _database(runtime: ServerRuntime) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with anyio.fail_after(CHECK_TIMEOUT):
            async with runtime.database.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT current_setting('server_version'), "
                    "(SELECT extversion FROM pg_extension WHERE extname = 'vector')"
                )
                row = await cur.fetchone()
    except Exception as exc:
        logger.warning("health: database check failed: %s", exc)
        return {"status": "down", "reachable": False, "error": _failure(exc)}
    server_version, pgvector = row if row is not None else (None, None)
    return {
        "status": "ok",
        "reachable": True,
        "embedded": runtime.settings.embedded_database,
        "server_version": server_version,
        "pgvector_version": pgvector,
        "latency_ms": _ms(started),
    }


async def _store(runtime: ServerRuntime) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with anyio.fail_after(CHECK_TIMEOUT):
            await runtime.store.ping()
    except Exception as exc:
        logger.warning("health: store check failed: %s", exc)
        return {"status": "down", "backend": runtime.store_backend, "error": _failure(exc)}
    return {"status": "ok", "backend": runtime.store_backend, "latency_ms": _ms(started)}


def _server(runtime: ServerRuntime) -> dict[str, Any]:
    return {
        "status": "ok",
        "name": runtime.spec.name,
        "version": runtime.spec.version,
        "transport": runtime.transport,
        "pid": runtime.pid,
        "uptime_s": round(runtime.uptime_seconds, 3),
    }


async def _extra(runtime: ServerRuntime) -> dict[str, Any] | None:
    check = runtime.spec.health
    if check is None:
        return None
    try:
        with anyio.fail_after(CHECK_TIMEOUT):
            result = await check(runtime)
    except Exception as exc:
        logger.warning("health: %s checks failed: %s", runtime.spec.name, exc)
        return {"status": "down", "error": _failure(exc)}
    return {"status": "ok", **result}


async def check_health(runtime: ServerRuntime) -> dict[str, Any]:
    """Database, store and server state, the server's own checks, and an overall status."""
    report: dict[str, Any] = {
        "database": await _database(runtime),
        "store": await _store(runtime),
        "server": _server(runtime),
    }
    extra = await _extra(runtime)
    if extra is not None:
        report["checks"] = extra
    healthy = all(part.get("status") == "ok" for part in report.values())
    return {"status": "ok" if healthy else "degraded", **report}
