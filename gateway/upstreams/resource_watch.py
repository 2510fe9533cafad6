"""Keep each upstream subscribed to exactly the resources the gateway's clients watch.

Clients watch a resource in two ways: a 2025-11-25 session with `resources/subscribe`,
a 2026-07-28 client with the `resourceSubscriptions` of a `subscriptions/listen` stream.
Every watcher is a holder of (upstream, URI); the upstream hears `resources/subscribe`
when the first holder arrives and `resources/unsubscribe` when the last one leaves, so
one client leaving never silences another. Subscriptions go over the upstream's
handshake-era connection (every upstream has one; its `notifications/resources/updated`
reach the gateway there), and a new connection (a restarted upstream) is subscribed
again to everything still held, since the old server process forgot it all.

Changes for one upstream are applied by one task at a time (a lock per upstream), so a
subscribe and an unsubscribe of the same URI never cross on the wire.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup
from mcp.shared.exceptions import MCPError

if TYPE_CHECKING:
    from gateway.upstreams.connection import UpstreamConnection

__all__ = ["ResourceWatch"]

logger = logging.getLogger(__name__)

ConnectionFn = Callable[[str], "UpstreamConnection | None"]


class ResourceWatch:
    """Who watches which resource of which upstream, and what each upstream was told."""

    def __init__(self, connection: ConnectionFn) -> None:
        self._connection = connection
        self._holders: dict[tuple[str, str], set[Hashable]] = {}
        # What the upstream's current connection has been subscribed to.
        self._told: dict[str, tuple[UpstreamConnection, set[str]]] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._tg: TaskGroup | None = None

    def start(self, tg: TaskGroup) -> None:
        """Run the upstream traffic of releases and reconnects in `tg`."""
        self._tg = tg

    def watched(self, upstream: str) -> set[str]:
        """The URIs of `upstream` someone watches."""
        return {uri for (name, uri) in self._holders if name == upstream}

    async def hold(self, upstream: str, uri: str, holder: Hashable) -> str | None:
        """`holder` watches `uri` of `upstream`; returns why the upstream will not send its
        updates (the holder is then dropped), or None.

        An upstream that is not connected right now is subscribed when it connects. A
        subscription someone else just sent is sent again all the same: only what was sent
        under this watch's lock is known to hold (an unsubscribe may have crossed it).
        """
        self._holders.setdefault((upstream, uri), set()).add(holder)
        problem = (await self.sync(upstream)).get(uri)
        if problem is not None:
            self._drop(holder, upstream, uri)
        return problem

    def release(self, holder: Hashable) -> None:
        """`holder` stops watching everything it watched (its session or stream ended)."""
        keys = [key for key, holders in self._holders.items() if holder in holders]
        for upstream, uri in keys:
            self._drop(holder, upstream, uri)
        for upstream in {upstream for upstream, _ in keys}:
            self._later(upstream)

    async def unhold(self, holder: Hashable, upstream: str, uri: str) -> None:
        """`holder` stops watching `uri` of `upstream`; returns once the upstream was told."""
        self._drop(holder, upstream, uri)
        await self.sync(upstream)

    def connected(self, upstream: str) -> None:
        """`upstream` has a new handshake-era connection: subscribe it to what is held."""
        if self.watched(upstream):
            self._later(upstream)

    async def sync(self, upstream: str) -> dict[str, str]:
        """Subscribe and unsubscribe `upstream` until it is told what is held; returns the
        URIs it would not subscribe to, with the reason."""
        lock = self._locks.setdefault(upstream, anyio.Lock())
        async with lock:
            connection = self._connection(upstream)
            if connection is None or not connection.ready:
                return {}
            known, told = self._told.get(upstream, (None, set[str]()))
            if known is not connection:
                told = set()
                self._told[upstream] = (connection, told)
            wanted = self.watched(upstream)
            problems: dict[str, str] = {}
            missing = sorted(wanted - told)
            resources = connection.catalog.capabilities.get("resources") or {}
            if missing and not resources.get("subscribe"):
                reason = f"upstream {upstream!r} does not offer resource subscriptions"
                return dict.fromkeys(missing, reason)
            for uri in missing:
                try:
                    await connection.request("resources/subscribe", {"uri": uri})
                    told.add(uri)
                except MCPError as exc:
                    problems[uri] = f"upstream {upstream!r}: {exc.error.message}"
                    logger.warning("upstream %s refused a subscription to %s: %s", upstream, uri, exc)
            for uri in sorted(told - wanted):
                told.discard(uri)
                try:
                    await connection.request("resources/unsubscribe", {"uri": uri})
                except MCPError as exc:  # the upstream may notify a little longer; clients never hear it
                    logger.info("upstream %s did not unsubscribe from %s: %s", upstream, uri, exc)
            return problems

    def _drop(self, holder: Hashable, upstream: str, uri: str) -> None:
        holders = self._holders.get((upstream, uri))
        if holders is not None:
            holders.discard(holder)
            if not holders:
                del self._holders[upstream, uri]

    def _later(self, upstream: str) -> None:
        if self._tg is not None:
            self._tg.start_soon(self._sync_logged, upstream)

    async def _sync_logged(self, upstream: str) -> None:
        try:
            await self.sync(upstream)
        except Exception:  # the next hold, release or reconnect tries again
            logger.exception("could not update the resource subscriptions of upstream %s", upstream)
