"""A small bounded TTL cache of API key rows, safe against stale refills.

A lookup that started before an invalidation must not put its (possibly
pre-revocation) row back afterwards: every invalidation bumps `generation`, and `put`
is ignored unless the generation is still the one the lookup started under.

Ids that name no key are kept apart, in a table a tenth the size: a flood of made-up
keys churns that table and never pushes a real key out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.auth.key_store import StoredKey
from gateway.auth.principal import Principal

__all__ = ["CachedKey", "KeyCache"]


@dataclass(frozen=True, slots=True)
class CachedKey:
    """A looked-up key (`stored` None: no such id), ready for the hot path."""

    stored: StoredKey | None
    principal: Principal | None
    # Wall-clock expiry as epoch seconds (inf: never), so the hot path avoids datetimes.
    expires_at: float
    fetched_at: float

    @classmethod
    def of(cls, key_id: str, stored: StoredKey | None, fetched_at: float) -> CachedKey:
        if stored is None:
            return cls(None, None, float("inf"), fetched_at)
        record = stored.record
        principal = Principal(record.name, record.tenant, record.roles, (), "api_key", key_id)
        expires = record.expires_at.timestamp() if record.expires_at is not None else float("inf")
        return cls(stored, principal, expires, fetched_at)


class KeyCache:
    """At most `max_entries` keys, each trusted for `ttl` seconds after its lookup."""

    def __init__(self, *, ttl: float, max_entries: int) -> None:
        if ttl < 0 or max_entries < 1:
            raise ValueError(f"ttl must be >= 0 and max_entries >= 1, got {ttl!r} and {max_entries!r}")
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_unknown = max(1, max_entries // 10)
        self.generation = 0
        self._entries: dict[str, CachedKey] = {}
        self._unknown: dict[str, CachedKey] = {}  # ids that name no key

    def __len__(self) -> int:
        return len(self._entries) + len(self._unknown)

    def get(self, key_id: str) -> CachedKey | None:
        table = self._entries
        entry = table.get(key_id)
        if entry is None:
            table = self._unknown
            entry = table.get(key_id)
            if entry is None:
                return None
        if time.monotonic() - entry.fetched_at >= self.ttl:
            del table[key_id]
            return None
        return entry

    def put(self, key_id: str, entry: CachedKey, generation: int) -> None:
        if generation != self.generation:
            return
        self._entries.pop(key_id, None)
        self._unknown.pop(key_id, None)
        known = entry.stored is not None
        table, limit = (self._entries, self.max_entries) if known else (self._unknown, self.max_unknown)
        while len(table) >= limit:
            # Oldest inserted first: dicts keep insertion order.
            del table[next(iter(table))]
        table[key_id] = entry

    def invalidate(self, key_id: str) -> None:
        self.generation += 1
        self._entries.pop(key_id, None)
        self._unknown.pop(key_id, None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._unknown.clear()
