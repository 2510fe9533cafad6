"""Look at, and stop, the instance running for a BASTION_HOME."""

from __future__ import annotations

import os
import signal
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil

from bastion.db.embedded import EmbeddedPostgres
from bastion.home import Home
from bastion.settings import Settings
from bastion.supervisor import read_state

__all__ = ["instance_status", "render_status", "stop_instance"]


def reachable(url: str) -> str:
    """`url` with a wildcard listen address (0.0.0.0, ::) replaced by loopback: the gateway
    answers its full `/readyz` only to a loopback client naming this machine in Host."""
    parts = urlsplit(url)
    loopback = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(parts.hostname or "")  # noqa: S104 - mapping
    if loopback is None:
        return url
    netloc = f"{loopback}:{parts.port}" if parts.port else loopback
    return urlunsplit(parts._replace(netloc=netloc))


def _probe(url: str) -> dict[str, Any]:
    try:
        response = httpx.get(reachable(url), timeout=2.0)
    except httpx.HTTPError as exc:
        return {"ok": False, "error": str(exc) or type(exc).__name__}
    return {"ok": response.status_code == 200, "status_code": response.status_code}


def instance_status(settings: Settings) -> dict[str, Any]:
    """What runs for this home: supervisor, children with their health, database, store."""
    home = Home(settings.home)
    state = read_state(home)
    report: dict[str, Any] = {"home": str(home.path), "running": state is not None}
    if settings.embedded_database:
        report["database"] = {"embedded": True, **EmbeddedPostgres(home).status().as_dict()}
    else:
        report["database"] = {"embedded": False}
    report["store"] = "redis" if settings.redis_url else "postgres"
    if state is None:
        return report
    report["supervisor"] = {"pid": state["pid"], "started_at": state["started_at"]}
    report["gateway_url"] = state["gateway_url"]
    children: dict[str, Any] = {}
    for name, child in state["children"].items():
        alive = isinstance(child.get("pid"), int) and psutil.pid_exists(child["pid"])
        health = _probe(child["url"] + "/healthz") if alive else {"ok": False, "error": "not running"}
        children[name] = {**child, "alive": alive, "health": health}
    report["children"] = children
    try:
        ready = httpx.get(reachable(state["gateway_url"]) + "/readyz", timeout=3.0).json()
    except (httpx.HTTPError, ValueError):
        ready = {}
    report["ready"] = ready.get("ready")
    report["checks"] = ready.get("checks", {})
    report["upstreams"] = ready.get("upstreams", {})
    report["policy"] = ready.get("policy")
    return report


def render_status(report: dict[str, Any]) -> str:
    if not report["running"]:
        lines = [f"Bastion is not running for {report['home']}."]
    else:
        lines = [f"Bastion is running for {report['home']} (supervisor pid {report['supervisor']['pid']})."]
        for name, child in report["children"].items():
            mark = "healthy" if child["health"]["ok"] else f"unhealthy ({child['health'].get('error', '')})"
            lines.append(
                f"  {name:<9} {child['url']:<28} pid {child['pid']}  {mark}  restarts {child['restarts']}"
            )
    for name, upstream in (report.get("upstreams") or {}).items():
        error = f" ({upstream['last_error']})" if upstream.get("last_error") else ""
        calls = upstream.get("calls") or {}
        limit = (
            f"  calls {calls['counted']}/{calls['max_concurrency']}" if calls.get("max_concurrency") else ""
        )
        waiting = f" ({calls['waiting']} waiting)" if calls.get("waiting") else ""
        lines.append(
            f"  upstream  {name:<12} {upstream['transport']:<5} {upstream['state']}"
            f"  tools {upstream['tools']}  restarts {upstream['restarts']}{limit}{waiting}{error}"
        )
        modern = upstream.get("modern")
        if modern:  # its 2026-07-28 connection (docs/gateway.md, "Upstreams")
            detail = (
                ""
                if modern["state"] == "unsupported"
                else f"  tools {modern['tools']}  restarts {modern['restarts']}"
            )
            lines.append(f"{'':<25}2026-07-28 {modern['state']}{detail}")
    db = report["database"]
    if db.get("embedded"):
        where = f"pid {db['pid']}, socket {db['socket_dir']}" if db["running"] else "stopped"
        lines.append(f"  database  embedded PostgreSQL 18: {where}")
    else:
        lines.append("  database  DATABASE_URL")
    lines.append(f"  store     {report['store']}")
    return "\n".join(lines)


def stop_instance(settings: Settings, *, timeout: float = 60.0) -> str:
    """Send SIGTERM to the supervisor and wait until it is gone."""
    home = Home(settings.home)
    state = read_state(home)
    if state is None:
        return f"Bastion is not running for {home.path}."
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    if psutil.pid_exists(pid) and read_state(home) is not None:
        return f"supervisor pid {pid} is still stopping after {timeout:.0f} s; check {home.logs}."
    return f"Bastion stopped (supervisor pid {pid})."
