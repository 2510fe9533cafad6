"""`follow`: keep a subscription to one channel for as long as the task runs.

Pub/sub is live and at-most-once (`bastion.stores.base`): what is published while a
process is not subscribed never reaches it. So each (re)subscription first calls
`on_subscribed`, for the caller to drop whatever it may have missed; a lost
subscription is logged and tried again with a growing delay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bastion.errors import StoreError
from bastion.stores.base import Store

__all__ = ["RESUBSCRIBE_MAX_S", "follow"]

logger = logging.getLogger(__name__)

RESUBSCRIBE_MAX_S = 30.0


async def follow(
    store: Store,
    channel: str,
    on_message: Callable[[bytes], None],
    *,
    what: str,
    on_subscribed: Callable[[], None] | None = None,
    on_error: Callable[[], None] | None = None,
) -> None:
    """Hand every message of `channel` to `on_message` until the store is closed.

    `what` names, in the warning, what goes unfollowed while the store fails;
    `on_error` is called on each failure.
    """
    delay = 0.5
    while True:
        try:
            async with store.subscribe(channel) as subscription:
                if on_subscribed is not None:
                    on_subscribed()
                delay = 0.5
                async for message in subscription:
                    on_message(message)
            return  # the store was closed
        except StoreError as exc:
            if on_error is not None:
                on_error()
            logger.warning("%s not followed (%s); retrying in %.1f s", what, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RESUBSCRIBE_MAX_S)
