"""Requests an upstream sends back during a call: elicitation, sampling, roots, log lines.

An upstream that needs the user (elicitation), a model (sampling) or the client's roots
while it handles a `tools/call` asks its client, the gateway. The gateway relays the
request to the client whose call is in flight on that upstream, on that call's own
stream, and the answer back. Over stdio the upstream names no request, so the relay
needs exactly one call in flight on that upstream from a client able to answer; with
several, it refuses rather than guess which person to ask.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

from mcp import types
from mcp.server.session import ServerSession
from mcp.shared.message import ServerMessageMetadata

__all__ = ["BackChannels"]

logger = logging.getLogger(__name__)


class BackChannels:
    """Which client sessions have a call in flight on which upstream."""

    def __init__(self) -> None:
        self._open: dict[str, list[tuple[ServerSession, types.RequestId | None]]] = {}

    @contextmanager
    def open(
        self, upstream: str, session: ServerSession, request_id: types.RequestId | None
    ) -> Generator[None]:
        entry = (session, request_id)
        self._open.setdefault(upstream, []).append(entry)
        try:
            yield
        finally:
            self._open[upstream].remove(entry)

    def _single(self, upstream: str) -> tuple[ServerSession, types.RequestId | None] | types.ErrorData:
        channels = self._open.get(upstream) or []
        if len(channels) == 1:
            return channels[0]
        reason = "no call is in flight" if not channels else f"{len(channels)} calls are in flight"
        return types.ErrorData(
            code=-32600, message=f"the gateway cannot relay this request from {upstream!r}: {reason} on it"
        )

    async def relay(self, upstream: str, request: types.ServerRequest, result_type: type[Any]) -> Any:
        target = self._single(upstream)
        if isinstance(target, types.ErrorData):
            return target
        session, request_id = target
        try:
            return await session.send_request(
                request, result_type, metadata=ServerMessageMetadata(related_request_id=request_id)
            )
        except Exception as exc:
            return types.ErrorData(code=-32603, message=f"the client did not answer: {exc}")

    async def log(self, upstream: str, params: types.LoggingMessageNotificationParams) -> None:
        target = self._single(upstream)
        if isinstance(target, types.ErrorData):
            return
        session, request_id = target
        try:
            await session.send_log_message(  # pyright: ignore[reportDeprecated]
                params.level, params.data, params.logger, related_request_id=request_id
            )
        except Exception as exc:
            logger.debug("could not relay a log line from %s: %s", upstream, exc)
