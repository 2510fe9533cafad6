"""Start, watch and restart every upstream; publish their combined catalog.

Each upstream runs in its own supervising task: connect, initialise, list, then wait
until the connection closes, and start again after a backoff (0.5 s doubling to
30 s, reset once it stayed up for a minute). A stdio upstream that crashes is
restarted this way; requests in flight fail at once, naming the upstream. A dual-era
upstream has a second supervised connection in the 2026-07-28 era, with its own
catalog (an upstream may offer different things per era); when the upstream turns
out not to speak 2026-07-28, that connection is dropped for good and the gateway's
2026-07-28 clients are served over the handshake-era one. Any change
of any catalog (a reconnect, a `list_changed` notification) bumps `generation` and
fires the registered listeners, so views rebuild and clients are notified.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from anyio.abc import TaskGroup
from mcp import types
from prometheus_client import Counter, Gauge

from bastion.metrics import REGISTRY
from gateway.back_channel import BackChannels
from gateway.upstreams.call_slots import CallSlots
from gateway.upstreams.connection import Catalog, ModernUnsupportedError, UpstreamConnection, UpstreamSpec
from gateway.upstreams.resource_watch import ResourceWatch

__all__ = ["RESOURCE_UPDATED", "UpstreamManager", "UpstreamState"]

logger = logging.getLogger(__name__)

UPSTREAM_RESTARTS = Counter(
    "bastion_upstream_restarts",
    "Upstream connections restarted after they closed",
    ["upstream"],
    registry=REGISTRY,
)
UPSTREAM_SLOW_CALLS = Counter(
    "bastion_upstream_slow_calls",
    "Calls that ran longer than the upstream's slow_call_ms and stopped counting toward max_concurrency",
    ["upstream"],
    registry=REGISTRY,
)
UPSTREAM_UP = Gauge(
    "bastion_upstream_up", "1 when the upstream is connected", ["upstream"], registry=REGISTRY
)

State = Literal["starting", "ready", "restarting", "failed", "stopped", "unsupported"]
Listener = Callable[
    [str, str], Awaitable[None]
]  # (upstream, what changed: "catalog" or a notification method)

RESOURCE_UPDATED = "resource_updated:"  # listener `what` prefix, followed by the URI
STABLE_AFTER = 60.0
CONNECT_TIMEOUT = 90.0


@dataclass
class UpstreamState:
    spec: UpstreamSpec
    state: State = "starting"
    connection: UpstreamConnection | None = None
    restarts: int = 0
    catalog: Catalog | None = None
    last_error: str | None = None
    connected_at: float | None = None
    modern: UpstreamState | None = None  # the 2026-07-28 connection of a dual-era upstream

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "transport": self.spec.transport,
            "state": self.state,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "tools": len(self.connection.catalog.tools) if self.connection else 0,
        }
        if self.modern is not None:
            described["modern"] = {k: v for k, v in self.modern.describe().items() if k != "transport"}
        return described


class UpstreamManager:
    """Owns every upstream connection of the gateway."""

    def __init__(self, specs: Mapping[str, UpstreamSpec], *, backoff_max: float = 30.0) -> None:
        self.states = {
            name: UpstreamState(spec, modern=UpstreamState(spec) if spec.dual_era else None)
            for name, spec in specs.items()
        }
        self.back = BackChannels()
        # Resource subscriptions go over the handshake-era connection, where updates arrive.
        self.watch = ResourceWatch(lambda name: self.connection(name))
        self.backoff_max = backoff_max
        self.generation = 0
        self._listeners: list[Listener] = []
        self._first_round = {
            (name, modern): anyio.Event()
            for name, spec in specs.items()
            for modern in ((False, True) if spec.dual_era else (False,))
        }
        # `max_concurrency`: one count of calls in flight per upstream, both eras together.
        self._slots = {
            name: CallSlots(
                spec.max_concurrency,
                spec.slow_call,
                on_slow=UPSTREAM_SLOW_CALLS.labels(name).inc,
            )
            for name, spec in specs.items()
            if spec.max_concurrency is not None
        }

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def slots(self, name: str) -> CallSlots | None:
        """The upstream's call slots when it has a `max_concurrency`; None: no limit."""
        return self._slots.get(name)

    def connection(self, name: str, *, modern: bool = False) -> UpstreamConnection | None:
        """The connection for a client of the handshake era, or of 2026-07-28 (`modern`)."""
        state = self.states.get(name)
        return _for_era(state, modern).connection if state is not None else None

    def catalogs(self, *, modern: bool = False) -> dict[str, Catalog]:
        """Catalogs of connected upstreams, and the last one of each upstream that is restarting.

        Keeping a restarting upstream's tools listed means a caller hears "not connected right
        now; retry shortly" during a restart instead of "unknown tool". For `modern`, an
        upstream's 2026-07-28 catalog where it has one.
        """
        catalogs: dict[str, Catalog] = {}
        for name, state in self.states.items():
            catalog = _for_era(state, modern).catalog
            if catalog is not None:
                catalogs[name] = catalog
        return catalogs

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {}
        for name, state in sorted(self.states.items()):
            described[name] = state.describe()
            slots = self._slots.get(name)
            described[name]["calls"] = (
                {"max_concurrency": None}
                if slots is None
                else {
                    "max_concurrency": slots.limit,
                    "slow_call_ms": None if slots.slow_after is None else round(slots.slow_after * 1000),
                    "counted": slots.counted,
                    "waiting": slots.waiting,
                }
            )
        return described

    async def wait_ready(self, timeout: float) -> bool:  # noqa: ASYNC109 - a deadline, not a cancel scope
        """Wait until every upstream connected or failed once; False on timeout."""
        with anyio.move_on_after(timeout):
            for event in self._first_round.values():
                await event.wait()
            return True
        return False

    async def start(self, tg: TaskGroup, *, wait: float = CONNECT_TIMEOUT) -> None:
        """Start every upstream; return once each has connected or failed once, or after `wait` s."""
        self.watch.start(tg)
        for name, state in self.states.items():
            tg.start_soon(self._supervise, name, state, False)
            if state.modern is not None:
                tg.start_soon(self._supervise, name, state.modern, True)
        if wait <= 0:
            return
        with anyio.move_on_after(wait):
            for event in self._first_round.values():
                await event.wait()

    async def _changed(self, upstream: str, what: str) -> None:
        self.generation += 1
        for listener in list(self._listeners):
            try:
                await listener(upstream, what)
            except Exception:
                logger.exception("catalog listener failed")

    async def _on_notification(self, upstream: str, message: types.ServerNotification) -> None:
        method = getattr(message, "method", "")
        if method.endswith("/list_changed"):
            await self._changed(upstream, method)
        elif method == "notifications/resources/updated":
            uri = str(getattr(getattr(message, "params", None), "uri", ""))
            for listener in list(self._listeners):
                try:
                    await listener(upstream, f"{RESOURCE_UPDATED}{uri}")
                except Exception:
                    logger.exception("resource listener failed")

    async def _supervise(self, name: str, state: UpstreamState, modern: bool) -> None:
        era = " (2026-07-28)" if modern else ""
        backoff = 0.5
        while True:
            connection = UpstreamConnection(
                state.spec, modern=modern, on_notification=self._on_notification, back=self.back
            )
            started = time.monotonic()
            try:
                async with anyio.create_task_group() as tg:
                    with anyio.fail_after(CONNECT_TIMEOUT):
                        await tg.start(connection.run)
                    state.connection = connection
                    state.catalog = connection.catalog
                    state.state = "ready"
                    state.connected_at = time.time()
                    state.last_error = None
                    if not modern:
                        UPSTREAM_UP.labels(name).set(1)
                    logger.info("upstream %s%s ready (%d tools)", name, era, len(connection.catalog.tools))
                    self._first_round[name, modern].set()
                    if not modern:
                        self.watch.connected(name)
                    await self._changed(name, "catalog")
                    await connection.closed.wait()
            except Exception as exc:
                unsupported = _find(exc, ModernUnsupportedError)
                if unsupported is not None and state.connected_at is None:
                    # Its 2026-07-28 clients are served over the handshake-era connection.
                    logger.info("%s; its 2026-07-28 clients use its handshake-era connection", unsupported)
                    state.state, state.last_error, state.connection = "unsupported", str(unsupported), None
                    self._first_round[name, modern].set()
                    await self._changed(name, "catalog")
                    return
                state.last_error = _describe(exc)
                logger.warning("upstream %s%s failed: %s", name, era, state.last_error)
            if not modern:
                UPSTREAM_UP.labels(name).set(0)
            was_ready = state.state == "ready"
            state.state = "restarting" if was_ready else "failed"
            state.connection = None
            self._first_round[name, modern].set()
            if was_ready:
                await self._changed(name, "catalog")
            if time.monotonic() - started > STABLE_AFTER:
                backoff = 0.5
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max)
            state.restarts += 1
            UPSTREAM_RESTARTS.labels(name).inc()


def _for_era(state: UpstreamState, modern: bool) -> UpstreamState:
    """The connection state a client of that era is served by.

    A 2026-07-28 client gets the upstream's 2026-07-28 connection once it has connected;
    before that, and for an upstream that does not speak 2026-07-28, the handshake one.
    """
    if modern and state.modern is not None and state.modern.catalog is not None:
        return state.modern
    return state


def _find(exc: BaseException, kind: type[Exception]) -> Exception | None:
    """`exc` or the first exception of that kind inside an exception group."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:  # pyright: ignore[reportUnknownVariableType]
            found = _find(inner, kind)  # pyright: ignore[reportUnknownArgumentType]
            if found is not None:
                return found
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not isinstance(e, anyio.get_cancelled_exc_class())]  # type: ignore[misc]
        if inner:
            return _describe(inner[0])
    if isinstance(exc, TimeoutError):
        return f"not ready within {CONNECT_TIMEOUT:.0f} s (connecting, initialize and the first lists)"
    return str(exc) or type(exc).__name__
