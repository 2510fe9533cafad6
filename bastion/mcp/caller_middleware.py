"""Caller-context enforcement: every request is verified before any handler runs.

`CallerContextMiddleware` is MCP server middleware (`async (ctx, call_next)`), so it
wraps each inbound request on every transport and both protocol eras: handshake
sessions (2025-11-25) and stateless per-request envelopes (2026-07-28) alike. It reads
`_meta["bastion/caller"]`, verifies it with the instance key and exposes the result to
handlers through `current_caller()`.

- signed and fresh: the handler runs as that caller;
- absent over stdio: the handler runs as the local owner, with full access;
- absent over HTTP, forged, expired or malformed: a JSON-RPC error with code
  `CALLER_REFUSED` and the reason; nothing runs.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError

from bastion.caller import META_KEY, CallerContext, verify_caller
from bastion.errors import CallerContextError
from bastion.mcp.runtime import Transport

__all__ = ["CALLER_REFUSED", "EXEMPT_METHODS", "CallerContextMiddleware", "current_caller"]

logger = logging.getLogger(__name__)

# JSON-RPC code for a refused caller context, in the implementation-defined band
# (-32000..-32019) that the MCP spec leaves to servers; the SDK uses -32000/-32001.
CALLER_REFUSED = -32010

# Requests that carry no caller and touch no data: the handshake, liveness and discovery.
EXEMPT_METHODS = frozenset({"initialize", "ping", "server/discover"})

_current: contextvars.ContextVar[CallerContext | None] = contextvars.ContextVar(
    "bastion_caller", default=None
)


def current_caller() -> CallerContext:
    """The verified caller of the request being handled.

    Raises RuntimeError outside a request handled by a Bastion server: reading a caller
    there is a bug, and guessing one would grant access nobody decided on.
    """
    caller = _current.get()
    if caller is None:
        raise RuntimeError(
            "current_caller() called outside a request: only tools, resources and prompts of a "
            "server built with bastion.mcp.build_server have a caller"
        )
    return caller


class CallerContextMiddleware:
    """Verify the caller context of each request and bind it for the handler."""

    def __init__(
        self,
        key: bytes,
        *,
        transport: Transport,
        require: bool = False,
        leeway: float = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._transport: Transport = transport
        # Servers the gateway spawns over stdio are no local owner's: they require it too.
        self._require = require
        self._leeway = leeway
        self._clock = clock

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        # Notifications have no result to refuse and touch no data.
        if ctx.request_id is None or ctx.method in EXEMPT_METHODS:
            return await call_next(ctx)
        caller = self._resolve(ctx)
        token = _current.set(caller)
        try:
            return await call_next(ctx)
        finally:
            _current.reset(token)

    def _over_http(self, ctx: ServerRequestContext[Any, Any]) -> bool:
        # The HTTP transport attaches the Starlette request; checking it too means a
        # server mounted into another HTTP app is never mistaken for a local stdio one.
        return self._transport == "http" or ctx.request is not None

    def _resolve(self, ctx: ServerRequestContext[Any, Any]) -> CallerContext:
        wire = _raw_meta(ctx.params).get(META_KEY)
        if wire is None:
            if self._require or self._over_http(ctx):
                raise _refusal(
                    ctx.method,
                    "missing",
                    f"no caller context: requests over HTTP must carry a signed _meta[{META_KEY!r}]. "
                    "Call this server through the Bastion gateway, or run it over stdio "
                    "(`bastion serve NAME --transport stdio`) to act as the local owner.",
                )
            return CallerContext.local_owner()
        try:
            return verify_caller(wire, self._key, now=self._clock(), leeway=self._leeway)
        except CallerContextError as exc:
            raise _refusal(ctx.method, _reason(exc.message), exc.message) from None


def _raw_meta(params: Mapping[str, Any] | None) -> Mapping[str, Any]:
    # Read the wire `_meta` itself: the verified MAC covers the claims exactly as sent.
    meta = params.get("_meta") if params else None
    return meta if isinstance(meta, Mapping) else {}  # pyright: ignore[reportUnknownVariableType]


def _reason(message: str) -> str:
    if message.startswith("caller context expired"):
        return "expired"
    if message.startswith("caller context signature"):
        return "forged"
    return "malformed"


def _refusal(method: str, reason: str, message: str) -> MCPError:
    logger.warning("refused %s: %s caller context", method, reason)
    return MCPError(code=CALLER_REFUSED, message=message, data={"reason": reason, "status": 401})
