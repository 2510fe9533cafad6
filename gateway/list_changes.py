"""Tell each client of a list exactly when what it may see in that list changed.

Lists are filtered by policy per caller, so a change is news only to the callers who
see it: a viewer is not told that an admin-only tool appeared, and an analyst whom a
policy edit grants a tool is told at once, though no catalog changed.

Watchers are 2025-11-25 sessions (told with session notifications, for each kind they
have listed) and 2026-07-28 listen streams (told on their stream, for each kind they
asked to hear of). Each is kept with its caller and what it was last shown of each
kind; on a catalog change or a policy reload every watcher's list is taken again
(policy decisions, mostly from the cache, once per caller and era) and the watcher is
told of the kinds whose contents changed for it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Collection, Generator, Hashable
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

import anyio
from mcp.server.subscriptions import ServerEvent

from gateway.calls import CallContext, Gateway
from gateway.catalog import View

__all__ = ["KINDS", "Kind", "ListChanges", "StreamBus"]

logger = logging.getLogger(__name__)

Kind = Literal["tools", "prompts", "resources"]
KINDS: tuple[Kind, ...] = ("tools", "prompts", "resources")
Tell = Callable[[Kind], Awaitable[None]]

_STREAM: ContextVar[Hashable | None] = ContextVar("bastion_listen_stream", default=None)


class StreamBus:
    """The SDK's `SubscriptionBus` for listen streams, able to reach chosen streams.

    A stream is known by the key set with `streaming(key)` around its handler, which
    subscribes in that context.
    """

    def __init__(self) -> None:
        self._listeners: dict[object, tuple[Hashable | None, Callable[[ServerEvent], None]]] = {}

    @contextmanager
    def streaming(self, key: Hashable) -> Generator[None]:
        token = _STREAM.set(key)
        try:
            yield
        finally:
            _STREAM.reset(token)

    async def publish(self, event: ServerEvent) -> None:
        await self.publish_to(None, event)

    async def publish_to(self, keys: Collection[Hashable] | None, event: ServerEvent) -> None:
        """Deliver `event` to the streams of `keys` (None: every stream)."""
        for key, listener in list(self._listeners.values()):
            if keys is None or key in keys:
                try:
                    listener(event)
                except Exception:  # one broken stream must not keep the event from the others
                    logger.exception("a listen stream's listener failed")
        await anyio.lowlevel.checkpoint()  # let the streams drain between events

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        token = object()
        self._listeners[token] = (_STREAM.get(), listener)

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe


@dataclass
class _Watcher:
    call: CallContext  # who watches, and in which era
    tell: Tell
    shown: dict[Kind, object] = field(default_factory=dict[Kind, object])


class ListChanges:
    """Who watches which lists of one endpoint, and what each was last shown."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._watchers: dict[Hashable, _Watcher] = {}

    def watch(self, key: Hashable, call: CallContext, tell: Tell) -> None:
        """`key` (a session, a stream) is told of changes through `tell`; from now on,
        the caller of its latest request is who its lists are taken for."""
        watcher = self._watchers.get(key)
        if watcher is None:
            self._watchers[key] = _Watcher(call, tell)
        else:
            watcher.call, watcher.tell = call, tell

    def shown(self, key: Hashable, kind: Kind, listing: object) -> None:
        """`key` was shown `listing` (from `listing_of`) for `kind`."""
        watcher = self._watchers.get(key)
        if watcher is not None:
            watcher.shown[kind] = listing

    async def take(self, key: Hashable, kinds: Collection[Kind]) -> None:
        """Take `key`'s lists of `kinds` as they are now: its starting point."""
        watcher = self._watchers.get(key)
        if watcher is not None:
            for kind in kinds:
                watcher.shown[kind] = await self.listing(watcher.call, kind)

    def forget(self, key: Hashable) -> None:
        self._watchers.pop(key, None)

    async def listing(self, call: CallContext, kind: Kind) -> object:
        """What `call`'s caller is shown of `kind` on `call.view`, comparable from one
        moment to the next (no audit event: nobody asked for the list)."""
        if kind == "tools":
            return listing_of(await self.gateway.allowed_tools(call))
        if kind == "prompts":
            return listing_of(await self.gateway.allowed_prompts(call))
        return (call.view.resource_list, call.view.template_definitions())

    async def changed(self, view: View, modern_view: View) -> None:
        """The endpoint's views or the policy changed: tell each watcher what changed for it."""
        taken: dict[tuple[object, str | None, bool, Kind], object] = {}  # per caller, era and kind
        for key, watcher in list(self._watchers.items()):
            call = dataclasses.replace(watcher.call, view=modern_view if watcher.call.modern else view)
            for kind, before in list(watcher.shown.items()):
                ident = (call.principal, call.client_address, call.modern, kind)
                if ident not in taken:
                    taken[ident] = await self.listing(call, kind)
                now = taken[ident]
                if now == before:
                    continue
                watcher.shown[kind] = now
                try:
                    await watcher.tell(kind)
                except Exception as exc:  # a gone session or stream is simply dropped
                    logger.debug("could not tell %r of a list change: %s", key, exc)
                    self.forget(key)
                    break


def listing_of(definitions: list[dict[str, object]]) -> object:
    """A list as its client sees it, comparable: name -> definition."""
    return {str(d.get("name")): d for d in definitions}
