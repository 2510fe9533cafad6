"""Handshake-era sessions that every gateway replica can continue.

DESIGN.md keeps the gateway stateless: behind a load balancer, the next request of a
2025-11-25 session may reach another replica than the one that opened it. The replica
that opens a session saves, under the session id in the store (Redis across replicas,
else PostgreSQL), what it takes to open it again: the endpoint, the credential that
owns it, the client's `initialize` request, and whether its calls may take the fast
path. A replica asked for a session it does not hold loads that record and opens its
own copy by replaying the `initialize` (`SessionManager.adopt`); the client goes on as
if nothing happened.

- A record lives `idle` seconds past the session's last use on any replica: each
  replica saves again, every `refresh` seconds, the records of the sessions used on it.
  (A session used again just before its record expires may be missing for the other
  replicas until the next refresh; the replica it was used on still holds it.)
- DELETE ends the session everywhere: the record goes, and a message on
  `ENDED_CHANNEL` makes every replica drop its copy. A replica that misses the message
  (pub/sub is at-most-once) keeps a copy that only the owner's credential reaches,
  until it idles out; no replica can open it again.
- What a session sets up after `initialize` follows it too: the kinds of lists it was
  shown (which decide the `list_changed` notifications it hears), its resource
  subscriptions and whether it asked for log lines (`logging/setLevel`). The replica
  that serves such a request adds it to the record and tells the other replicas on
  `CHANGED_CHANNEL`; each replica holding a copy takes it on, so the one carrying the
  session's GET stream tells the client, wherever the client listed or subscribed. A
  replica that opens a copy later takes them from the record. The GET stream itself,
  with the events it can replay, stays on its replica; resumed on another, it is told
  that all the session follows may have changed (gateway/event_store.py).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

import orjson

from bastion.errors import StoreError
from bastion.stores import Store
from bastion.stores.follow import follow
from gateway.sessions import Owner

__all__ = [
    "CHANGED_CHANNEL",
    "ENDED_CHANNEL",
    "STORE_TIMEOUT",
    "SessionChange",
    "SessionRecord",
    "SessionRecords",
]

logger = logging.getLogger(__name__)

ENDED_CHANNEL = "gateway.sessions.ended"
CHANGED_CHANNEL = "gateway.sessions.changed"
ChangeKind = Literal["listed", "subscribe", "unsubscribe", "log_level"]
_CHANGE_KINDS: frozenset[str] = frozenset(get_args(ChangeKind))
# Seconds a request waits for the store (a stalled Redis never answers); then the session
# goes on without it, as for a store that failed.
STORE_TIMEOUT = 1.0
_KEY = "gateway.session:"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class SessionChange:
    """What a session set up after `initialize`: it `listed` a kind of list (`value`:
    tools, prompts or resources), subscribed to or unsubscribed from a resource URI, or set
    its `log_level` (its calls then take the path that relays upstream log lines)."""

    what: ChangeKind
    value: str

    def encode(self, sid: str, origin: str) -> bytes:
        return orjson.dumps({"sid": sid, "origin": origin, "what": self.what, "value": self.value})

    @classmethod
    def decode(cls, raw: bytes) -> tuple[str, str, SessionChange] | None:
        """(session id, origin, change), or None for a message this gateway cannot read."""
        try:
            data = orjson.loads(raw)
            what, value, sid, origin = data["what"], data["value"], data["sid"], data["origin"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None
        if what not in _CHANGE_KINDS or not all(isinstance(item, str) for item in (value, sid, origin)):
            return None
        return sid, origin, cls(what, value)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """What it takes to open session copies elsewhere, and what the session set up since."""

    view: str  # the endpoint's virtual server ("" for /mcp)
    owner: Owner
    initialize: dict[str, Any]  # the client's `initialize` request, as it sent it
    plain: bool  # its calls may take the fast path
    listed: frozenset[str] = frozenset()  # the kinds of lists it was shown
    subscriptions: frozenset[str] = frozenset()  # the resource URIs it subscribed to

    def with_change(self, change: SessionChange) -> SessionRecord:
        if change.what == "listed":
            return replace(self, listed=self.listed | {change.value})
        if change.what == "subscribe":
            return replace(self, subscriptions=self.subscriptions | {change.value})
        if change.what == "log_level":
            return replace(self, plain=False)  # a copy opened later routes its calls so too
        return replace(self, subscriptions=self.subscriptions - {change.value})

    def changes(self) -> list[SessionChange]:
        """What the session set up, as changes to take on in a new copy."""
        return [SessionChange("listed", kind) for kind in sorted(self.listed)] + [
            SessionChange("subscribe", uri) for uri in sorted(self.subscriptions)
        ]

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "v": _VERSION,
                "view": self.view,
                "owner": list(self.owner),
                "initialize": self.initialize,
                "plain": self.plain,
                "listed": sorted(self.listed),
                "subscriptions": sorted(self.subscriptions),
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> SessionRecord | None:
        """The record, or None for one this gateway cannot read (another version's)."""
        try:
            data = orjson.loads(raw)
            if data.get("v") != _VERSION:
                return None
            method, tenant, subject, key_id = data["owner"]
            initialize = data["initialize"]
            if not isinstance(initialize, dict):
                return None
            # (A record from a gateway before these two fields has neither.)
            listed, subscriptions = data.get("listed", []), data.get("subscriptions", [])
            return cls(
                view=str(data["view"]),
                owner=(str(method), str(tenant), str(subject), None if key_id is None else str(key_id)),
                initialize=initialize,
                plain=bool(data["plain"]),
                listed=frozenset(str(kind) for kind in listed),
                subscriptions=frozenset(str(uri) for uri in subscriptions),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None


class SessionRecords:
    """The store's records of handshake-era sessions, as one replica keeps them."""

    def __init__(self, store: Store, idle: float, *, refresh: float | None = None) -> None:
        self.store = store
        self.idle = idle
        self.refresh = refresh if refresh is not None else min(60.0, idle / 4)
        self._mine: dict[str, SessionRecord] = {}  # sessions held here: id -> their record
        # Told of the sessions ended elsewhere, not of its own (it has ended those already).
        self._origin = secrets.token_hex(8)

    async def save(self, sid: str, record: SessionRecord) -> None:
        """Session `sid` was opened here: other replicas may continue it from now on."""
        self._mine[sid] = record
        try:
            async with asyncio.timeout(STORE_TIMEOUT):
                await self.store.set(_KEY + sid, record.encode(), ttl=self.idle)
        except (StoreError, TimeoutError) as exc:
            logger.warning(
                "session %s is not saved for other replicas (%s); it works on this one", sid[:8], _why(exc)
            )

    async def load(self, sid: str) -> SessionRecord | None:
        """The record of a session opened on another replica, or None."""
        try:
            async with asyncio.timeout(STORE_TIMEOUT):
                raw = await self.store.get(_KEY + sid)
        except (StoreError, TimeoutError) as exc:
            logger.warning("the store could not say whether session %s exists (%s)", sid[:8], _why(exc))
            return None
        return SessionRecord.decode(raw) if raw is not None else None

    def hold(self, sid: str, record: SessionRecord) -> None:
        """This replica opened its own copy of session `sid` from `record`."""
        self._mine[sid] = record

    def drop(self, sid: str) -> None:
        """This replica no longer holds session `sid` (the record stays for the others)."""
        self._mine.pop(sid, None)

    async def end(self, sid: str) -> None:
        """The client ended session `sid`: no replica may continue it."""
        self.drop(sid)
        try:
            async with asyncio.timeout(STORE_TIMEOUT):
                await self.store.delete(_KEY + sid)
                await self.store.publish(ENDED_CHANNEL, f"{sid} {self._origin}".encode("ascii", "replace"))
        except (StoreError, TimeoutError) as exc:
            logger.warning("session %s could not be ended on the other replicas (%s)", sid[:8], _why(exc))

    async def change(self, sid: str, change: SessionChange) -> bool:
        """Session `sid`, held here, set something up: the record keeps it for the replicas
        that open a copy later, and the replicas holding one now are told. False (nothing
        saved or sent) when the record has it already, or this replica does not hold `sid`."""
        record = self._mine.get(sid)
        if record is None:
            return False
        changed = record.with_change(change)
        if changed == record:
            return False
        self._mine[sid] = changed
        try:
            async with asyncio.timeout(STORE_TIMEOUT):
                # The session is in use right now: its record lives `idle` from here. Both
                # at once (each is a commit on the PostgreSQL store), and both before the
                # answer, so that a replica the client turns to next knows of it.
                for outcome in await asyncio.gather(
                    self.store.set(_KEY + sid, changed.encode(), ttl=self.idle),
                    self.store.publish(CHANGED_CHANNEL, change.encode(sid, self._origin)),
                    return_exceptions=True,
                ):
                    if isinstance(outcome, BaseException):
                        raise outcome
        except (StoreError, TimeoutError) as exc:
            logger.warning(
                "session %s: %s %s is not shared with the other replicas (%s)",
                sid[:8],
                change.what,
                change.value,
                _why(exc),
            )
        return True

    def _took(self, sid: str, change: SessionChange) -> None:
        """Another replica's change of session `sid`, taken on here: this replica's
        refreshes of the record keep it."""
        record = self._mine.get(sid)
        if record is not None:
            self._mine[sid] = record.with_change(change)

    async def keep_alive(self, used_since: Callable[[float], Iterable[tuple[str, float]]]) -> None:
        """Every `refresh` seconds, save again the records of the sessions used here, to
        expire `idle` seconds after their last use. `used_since(t)`: the sessions used since
        monotonic time `t`, each with the monotonic time of its last use."""
        since = time.monotonic()
        while True:
            await asyncio.sleep(self.refresh)
            now = time.monotonic()
            try:
                for sid, seen in list(used_since(since)):
                    record = self._mine.get(sid)
                    left = self.idle - (now - seen)
                    if record is not None and left > 0:
                        await self.store.set(_KEY + sid, record.encode(), ttl=left)
            except StoreError as exc:
                logger.warning("session records not refreshed (%s); retrying in %.0f s", exc, self.refresh)
                continue  # `since` stays: these sessions again next time
            since = now

    async def follow_ends(
        self, on_end: Callable[[str], None], *, on_subscribed: Callable[[], None] | None = None
    ) -> None:
        """Call `on_end(sid)` for every session a client ends on another replica."""

        def ended(message: bytes) -> None:
            sid, _, origin = message.decode("ascii", "replace").partition(" ")
            if origin != self._origin:
                on_end(sid)

        await follow(
            self.store,
            ENDED_CHANNEL,
            ended,
            what="sessions ended on other replicas (their copies here idle out instead)",
            on_subscribed=on_subscribed,
        )

    async def follow_changes(
        self,
        on_change: Callable[[str, SessionChange], None],
        *,
        on_subscribed: Callable[[], None] | None = None,
    ) -> None:
        """Call `on_change(sid, change)` for every change another replica made to a
        session this one holds."""

        def changed(message: bytes) -> None:
            decoded = SessionChange.decode(message)
            if decoded is None:
                logger.warning("an unreadable session change was ignored: %r", message[:200])
                return
            sid, origin, change = decoded
            if origin != self._origin and sid in self._mine:
                self._took(sid, change)
                on_change(sid, change)

        await follow(
            self.store,
            CHANGED_CHANNEL,
            changed,
            what="what sessions set up on other replicas (lists and subscriptions)",
            on_subscribed=on_subscribed,
        )


def _why(exc: Exception) -> str:
    return str(exc) if isinstance(exc, StoreError) else f"no answer within {STORE_TIMEOUT:g} s"
