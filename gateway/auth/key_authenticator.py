"""`ApiKeyAuthenticator`: API keys on the hot path of every MCP call.

The first request with a key reads its row (concurrent first requests share one
read); later requests check the secret against the cached hash for `cache_ttl`
seconds (HMAC-SHA256 and a constant-time compare, a few microseconds). Unknown ids
are cached too, apart from real keys: a made-up key sent again costs no query, and a
flood of new made-up keys costs one indexed lookup each but never evicts a real key.

Revocation reaches every process through the store's pub/sub: this authenticator
subscribes to `REVOCATION_CHANNEL` and drops a revoked key at once. If the
subscription is lost it clears the cache and resubscribes; the TTL bounds how long a
revoked key can live if a message is missed all the same.

`last_used_at` is written in the background at most once a minute per key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType

from bastion.stores import Store
from bastion.stores.follow import follow
from gateway.auth._key_cache import CachedKey, KeyCache
from gateway.auth.api_keys import KEY_PREFIX, parse_key
from gateway.auth.authenticate import Authenticator, AuthFailure, bearer_token
from gateway.auth.key_store import REVOCATION_CHANNEL, TOUCH_INTERVAL_S, ApiKeyStore
from gateway.auth.principal import Principal

__all__ = ["ApiKeyAuthenticator"]

logger = logging.getLogger(__name__)

NOT_A_KEY = AuthFailure("unsupported", f"the bearer token is not a Bastion API key ({KEY_PREFIX}...)")
MALFORMED = AuthFailure("malformed", f"the API key is malformed: expected {KEY_PREFIX}<id>_<secret>")
UNKNOWN = AuthFailure("unknown", "unknown or invalid API key")
REVOKED = AuthFailure("revoked", "this API key was revoked")
EXPIRED = AuthFailure("expired", "this API key has expired")

SUBSCRIBE_TIMEOUT_S = 10.0


class ApiKeyAuthenticator(Authenticator):
    """Verifies `Authorization: Bearer bst_...`; use as `async with` to follow revocations."""

    def __init__(
        self,
        keys: ApiKeyStore,
        *,
        store: Store | None = None,
        cache_ttl: float = 10.0,
        cache_max_entries: int = 10_000,
    ) -> None:
        self.keys = keys
        self.store = store
        self.cache = KeyCache(ttl=cache_ttl, max_entries=cache_max_entries)
        self._inflight: dict[str, asyncio.Task[CachedKey]] = {}
        self._touched: dict[str, float] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._watcher: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------
    async def start(self) -> None:
        """Subscribe to revocations; returns once subscribed (or the first try failed)."""
        if self.store is None or self._watcher is not None:
            return
        first_try = asyncio.Event()
        self._watcher = asyncio.create_task(self._watch(self.store, first_try), name="api-key-revocations")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(first_try.wait(), SUBSCRIBE_TIMEOUT_S)

    async def aclose(self) -> None:
        """Stop following revocations and finish background writes."""
        tasks: list[asyncio.Task[object]] = [*self._background, *self._inflight.values()]
        if self._watcher is not None:
            self._watcher.cancel()
            tasks.append(self._watcher)
            self._watcher = None
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> ApiKeyAuthenticator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _watch(self, store: Store, first_try: asyncio.Event) -> None:
        def subscribed() -> None:
            # Whatever was revoked while we were not listening: forget everything.
            self.cache.clear()
            first_try.set()

        await follow(
            store,
            REVOCATION_CHANNEL,
            lambda message: self.cache.invalidate(message.decode("ascii", "replace")),
            what=f"API key revocations (the {self.cache.ttl:.0f} s cache TTL applies meanwhile)",
            on_subscribed=subscribed,
            on_error=first_try.set,
        )

    # -- verification ----------------------------------------------------------
    async def _verify(
        self, authorization_header: str | None, client_host: str | None
    ) -> Principal | AuthFailure:
        token = bearer_token(authorization_header)
        if isinstance(token, AuthFailure):
            return token
        if not token.startswith(KEY_PREFIX):
            return NOT_A_KEY
        parsed = parse_key(token)
        if parsed is None:
            return MALFORMED
        entry = self.cache.get(parsed.id) or await self._load(parsed.id)
        stored = entry.stored
        # The secret is checked before anything about the key is revealed.
        if stored is None or not self.keys.hasher.matches(parsed.id, parsed.secret, stored.secret_hash):
            return UNKNOWN
        if stored.record.revoked_at is not None:
            return REVOKED
        if entry.expires_at <= time.time():
            return EXPIRED
        self._touch(parsed.id)
        assert entry.principal is not None
        return entry.principal

    async def _load(self, key_id: str) -> CachedKey:
        task = self._inflight.get(key_id)
        if task is None:
            task = asyncio.create_task(self._fetch(key_id))
            self._inflight[key_id] = task
            task.add_done_callback(lambda done: self._settle(key_id, done))
        # Shielded: one cancelled caller must not cancel the lookup others wait on.
        return await asyncio.shield(task)

    def _settle(self, key_id: str, task: asyncio.Task[CachedKey]) -> None:
        if self._inflight.get(key_id) is task:
            del self._inflight[key_id]
        if not task.cancelled():
            task.exception()  # retrieved here, so an unawaited failure is not reported twice

    async def _fetch(self, key_id: str) -> CachedKey:
        generation = self.cache.generation
        stored = await self.keys.lookup(key_id)
        entry = CachedKey.of(key_id, stored, time.monotonic())
        self.cache.put(key_id, entry, generation)
        return entry

    def _touch(self, key_id: str) -> None:
        now = time.monotonic()
        last = self._touched.get(key_id)
        if last is not None and now - last < TOUCH_INTERVAL_S:
            return
        if len(self._touched) >= self.cache.max_entries:
            self._touched.clear()
        self._touched[key_id] = now
        task = asyncio.create_task(self._record_use(key_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _record_use(self, key_id: str) -> None:
        try:
            await self.keys.touch(key_id)
        except Exception as exc:  # advisory: never fail a call over it
            logger.warning("could not record the use of API key %s: %s", key_id, exc)
