"""Stores shared by every process of an instance: KV with TTL, counters, token
buckets, pub/sub and a durable queue, on Redis or PostgreSQL (the contract is in
`bastion.stores.base`)."""

from bastion.stores.base import MAX_MESSAGE_BYTES, BucketResult, Job, Store, Subscription
from bastion.stores.factory import open_store
from bastion.stores.memory import MemoryStore
from bastion.stores.postgres import PostgresStore
from bastion.stores.redis import RedisStore

__all__ = [
    "MAX_MESSAGE_BYTES",
    "BucketResult",
    "Job",
    "MemoryStore",
    "PostgresStore",
    "RedisStore",
    "Store",
    "Subscription",
    "open_store",
]
