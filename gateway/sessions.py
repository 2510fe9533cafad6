"""Handshake-era (2025-11-25) sessions as the MCP endpoint sees them.

The SDK's session manager runs the sessions; the endpoint learns each one from its
`initialize` answer and keeps who opened it (a session belongs to the credential that
opened it), whether its calls may take the fast path (a client that declared sampling,
elicitation or roots, or asked for log lines, stays on the SDK path, where the gateway
can relay an upstream's requests back to it), and when it was last seen.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from prometheus_client import Gauge

from bastion.metrics import REGISTRY
from gateway.auth import Principal

__all__ = ["SESSION_IDLE", "HandshakeSessions", "Owner", "owner_of"]

SESSIONS_OPEN = Gauge(
    "bastion_gateway_sessions_open",
    "Handshake-era MCP sessions seen within the idle timeout",
    registry=REGISTRY,
)
SESSION_IDLE = 1800.0

Owner = tuple[str, str, str, str | None]  # auth method, tenant, subject, key id


def owner_of(principal: Principal) -> Owner:
    """Who a session belongs to: the credential that opened it (an API key's id)."""
    return (principal.auth_method, principal.tenant, principal.subject, principal.key_id)


class HandshakeSessions:
    """Every handshake-era session the SDK opened: its owner, and its fast-path standing.

    `on_forget(sid)` is called when a session ends (DELETE, or idle past `idle`).
    """

    def __init__(self, idle: float, on_forget: Callable[[str], None]) -> None:
        self.idle = idle
        self._on_forget = on_forget
        self._fast: dict[str, float] = {}  # sessions the fast path may serve: id -> last seen
        self._open: dict[str, float] = {}  # every session: id -> last seen
        self._owners: dict[str, Owner] = {}
        self._users: dict[Owner, AuthenticatedUser] = {}  # the SDK's view of each caller
        self._last_prune = time.monotonic()

    def opened(self, sid: str, owner: Owner, *, plain: bool) -> None:
        """The SDK answered `initialize` with session `sid`; `plain`: the client declared
        nothing the gateway must relay back to it."""
        now = time.monotonic()
        self._open[sid] = now
        self._owners[sid] = owner
        if plain:
            self._fast[sid] = now

    def belongs(self, sid: str, owner: Owner) -> bool:
        return self._owners.get(sid) == owner

    def belongs_to_anyone(self, sid: str) -> bool:
        return sid in self._owners

    def seen(self, sid: str) -> None:
        """A request on the session reaches the SDK (only sessions the SDK created count)."""
        if sid in self._open:
            self._open[sid] = time.monotonic()

    def used_since(self, since: float) -> list[tuple[str, float]]:
        """Sessions with a request since monotonic time `since` (on either path), each with
        the time of its latest."""
        return [(sid, seen) for sid, seen in self._open.items() if seen >= since]

    def to_sdk(self, sid: str) -> None:
        """The session's calls go to the SDK from now on (it asked for log lines)."""
        self._fast.pop(sid, None)

    def fast(self, sid: str, owner: Owner, manager: StreamableHTTPSessionManager) -> bool:
        """Whether `owner`'s call on session `sid` may take the fast path; if so, it counts
        as activity of the session, on both paths."""
        seen = self._fast.get(sid)
        if seen is None or time.monotonic() - seen > self.idle:
            return False
        if self._owners.get(sid) != owner:
            return False  # another caller's session: the SDK answers 404
        if not _keep_sdk_session(manager, sid, self.idle):
            return False  # the SDK ended it (idle, or deleted): it answers as it does
        self._fast[sid] = self._open[sid] = time.monotonic()
        return True

    def forget(self, sid: str) -> None:
        self._fast.pop(sid, None)
        self._open.pop(sid, None)
        self._owners.pop(sid, None)
        self._on_forget(sid)

    def count(self) -> None:
        """Drop sessions idle past the SDK's own timeout, then publish the count."""
        now = time.monotonic()
        if now - self._last_prune > 60:
            self._last_prune = now
            for table in (self._fast, self._open):
                for sid in [s for s, seen in table.items() if now - seen > self.idle]:
                    del table[sid]
            for sid in [s for s in self._owners if s not in self._open]:
                self.forget(sid)
        SESSIONS_OPEN.set(len(self._open))

    def sdk_user(self, owner: Owner) -> AuthenticatedUser:
        """The caller as the SDK's session manager knows it: it binds each session to it."""
        user = self._users.get(owner)
        if user is None:
            method, tenant, subject, key_id = owner
            token = AccessToken(
                token="",  # the SDK compares identities, never the credential itself
                client_id=key_id or subject,
                scopes=[],
                subject=f"{tenant}/{subject}",
                claims={"iss": f"bastion:{method}"},
            )
            user = AuthenticatedUser(token)
            if len(self._users) < 10_000:
                self._users[owner] = user
        return user


def _keep_sdk_session(manager: StreamableHTTPSessionManager, sid: str, idle: float) -> bool:
    """Whether the SDK still holds session `sid`; if so, restart its idle countdown.

    Fast-path calls never reach the SDK, whose session would otherwise end `idle` seconds
    after its last SDK-path request while its client is still calling tools. The SDK keeps
    its sessions in `_server_instances` and exposes each one's `idle_scope` for its host
    to run the countdown; the gateway touches the countdown as a request would.
    """
    transport = manager._server_instances.get(sid)  # pyright: ignore[reportPrivateUsage]
    if transport is None:
        return False
    scope = transport.idle_scope
    if scope is not None:
        if scope.cancel_called:
            return False
        # inf: an SDK request is in flight and holds the session. Pushed back only once
        # half the countdown has run, so that a busy session does not re-arm a timer per call.
        now = anyio.current_time()
        if scope.deadline != math.inf and scope.deadline - now < idle / 2:
            scope.deadline = now + idle
    return True
