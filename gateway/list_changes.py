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

import asyncio
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


_Taken = dict[tuple[object, str | None, bool, Kind], object]  # per caller, era and kind


@dataclass
class _Watcher:
    call: CallContext  # who watches, and in which era
    tell: Tell
    shown: dict[Kind, object] = field(default_factory=dict[Kind, object])


class ListChanges:
    """Who watches which lists of one endpoint, and what each was last shown.

    `views`: the endpoint's views in force (handshake era, 2026-07-28), None before the
    first catalog.
    """

    def __init__(self, gateway: Gateway, views: Callable[[], tuple[View | None, View | None]]) -> None:
        self.gateway = gateway
        self._views = views
        self._watchers: dict[Hashable, _Watcher] = {}
        self._generation = 0  # bumped by every `changed`
        self._rechecks: set[asyncio.Task[None]] = set()

    @property
    def generation(self) -> int:
        """Read before taking a list; hand it to `shown` with the list."""
        return self._generation

    def watch(self, key: Hashable, call: CallContext, tell: Tell) -> None:
        """`key` (a session, a stream) is told of changes through `tell`; from now on,
        the caller of its latest request is who its lists are taken for."""
        watcher = self._watchers.get(key)
        if watcher is None:
            self._watchers[key] = _Watcher(call, tell)
        else:
            watcher.call, watcher.tell = call, tell

    def shown(self, key: Hashable, kind: Kind, listing: object, call: CallContext, since: int) -> None:
        """`key` was shown `listing` (from `listing_of`) for `kind`, taken for `call` from
        `generation` `since` on."""
        watcher = self._watchers.get(key)
        if watcher is not None:
            watcher.shown[kind] = listing
            if self._stale(call, since):
                self._recheck(key)

    async def take(self, key: Hashable, kinds: Collection[Kind]) -> None:
        """Take `key`'s lists of `kinds` as they are now: its starting point. A change that
        lands meanwhile is told once the caller's task next waits (a listen stream has
        subscribed by then)."""
        watcher = self._watchers.get(key)
        if watcher is not None:
            since = self._generation
            call = self.current(watcher.call)
            for kind in kinds:
                watcher.shown[kind] = await self.listing(call, kind)
            if self._stale(call, since):
                self._recheck(key)

    def showing(self, key: Hashable, kind: Kind) -> bool:
        """Whether `key` is told of changes to its `kind` list already."""
        watcher = self._watchers.get(key)
        return watcher is not None and kind in watcher.shown

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
        self._generation += 1
        taken: _Taken = {}
        for key, watcher in list(self._watchers.items()):
            call = dataclasses.replace(watcher.call, view=modern_view if watcher.call.modern else view)
            await self._tell(key, watcher, call, taken)

    async def _tell(self, key: Hashable, watcher: _Watcher, call: CallContext, taken: _Taken) -> None:
        """Tell `watcher` of each kind whose list, taken for `call`, differs from its last."""
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
                return

    def current(self, call: CallContext) -> CallContext:
        """`call` on the view of its era in force now."""
        view = self._views()[1 if call.modern else 0]
        return call if view is None or view is call.view else dataclasses.replace(call, view=view)

    def _stale(self, call: CallContext, since: int) -> bool:
        """Whether a list taken for `call` from `since` on may predate a change."""
        return since != self._generation or self.current(call) is not call

    def _recheck(self, key: Hashable) -> None:
        task = asyncio.get_running_loop().create_task(self._check(key))
        self._rechecks.add(task)
        task.add_done_callback(self._rechecks.discard)

    async def _check(self, key: Hashable) -> None:
        watcher = self._watchers.get(key)
        if watcher is None:
            return
        try:
            await self._tell(key, watcher, self.current(watcher.call), {})
        except Exception:  # the next change compares again; this one is logged
            logger.exception("could not take a list again after a change")


def listing_of(definitions: list[dict[str, object]]) -> object:
    """A list as its client sees it, comparable: name -> definition."""
    return {str(d.get("name")): d for d in definitions}
