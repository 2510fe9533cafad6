"""API keys: their wire format, how their secrets are hashed, and their records.

A key reads `bst_<id>_<secret>`:

- `bst_` makes a leaked key recognisable (secret scanners, logs, `git grep bst_`);
- `<id>` is 12 lowercase hex characters, public: `bastion keys list` shows it, audit
  events carry it, and it is the row's primary key, so a lookup is one index probe;
- `<secret>` is 32 random bytes, base64url without padding (43 characters).

Only `HMAC-SHA256(instance key, domain || id || secret)` is stored. The secret has 256
bits of entropy, so no offline guessing can succeed and a slow password hash (bcrypt,
Argon2: tens of milliseconds) would only slow every call. Keying the hash with the
instance key means someone who can write the database but cannot read
`$BASTION_HOME/instance.key` still cannot mint a working key, and binding the id
stops a stored hash from being moved onto another key's row.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from gateway.auth.errors import ApiKeyUsageError

__all__ = [
    "KEY_PREFIX",
    "ApiKeyRecord",
    "KeyHasher",
    "NewApiKey",
    "ParsedKey",
    "generate_key",
    "parse_key",
    "validate_key_fields",
]

KEY_PREFIX = "bst_"
ID_HEX_CHARS = 12
SECRET_BYTES = 32
# Domain separation: the instance key also signs caller contexts and encrypts secrets.
HASH_DOMAIN = b"bastion/api-key/v1\n"

_KEY = re.compile(r"bst_([0-9a-f]{12})_([A-Za-z0-9_-]{43,128})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@:-]{0,63}")
_ROLE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_TENANT = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")

KeyStatus = Literal["active", "revoked", "expired"]


@dataclass(frozen=True, slots=True)
class ParsedKey:
    id: str
    secret: str


def parse_key(token: str) -> ParsedKey | None:
    """Split a presented key into id and secret; None unless it is well formed."""
    match = _KEY.fullmatch(token)
    return None if match is None else ParsedKey(match[1], match[2])


def generate_key() -> ParsedKey:
    """A fresh random id and secret."""
    return ParsedKey(secrets.token_hex(ID_HEX_CHARS // 2), secrets.token_urlsafe(SECRET_BYTES))


class KeyHasher:
    """Hashes key secrets with the instance key; `matches` compares in constant time."""

    __slots__ = ("_base",)

    def __init__(self, instance_key: bytes) -> None:
        if len(instance_key) < 32:
            raise ValueError("the instance key must hold at least 32 bytes")
        # Keyed once; each hash copies the prepared state (about half the cost of hmac.new).
        self._base = hmac.new(instance_key, HASH_DOMAIN, hashlib.sha256)

    def hash(self, key_id: str, secret: str) -> bytes:
        mac = self._base.copy()
        mac.update(f"{key_id}\n{secret}".encode())
        return mac.digest()

    def matches(self, key_id: str, secret: str, stored: bytes) -> bool:
        return hmac.compare_digest(self.hash(key_id, secret), stored)


def validate_key_fields(name: str, roles: tuple[str, ...], tenant: str) -> None:
    """Refuse a name, role or tenant that policy, logs and audit could misread."""
    if not _NAME.fullmatch(name):
        raise ApiKeyUsageError(
            f"key name {name!r} is not allowed: use 1-64 letters, digits, spaces or ._@:- "
            "starting with a letter or digit (for example --name ci-bot)"
        )
    if not roles:
        raise ApiKeyUsageError(
            "a key needs at least one role: pass --role ROLE (admin, analyst, viewer, service)"
        )
    for role in roles:
        if not _ROLE.fullmatch(role):
            raise ApiKeyUsageError(
                f"role {role!r} is not allowed: use 1-32 lowercase letters, digits, _ or -, "
                "starting with a letter (for example --role analyst)"
            )
    if not _TENANT.fullmatch(tenant):
        raise ApiKeyUsageError(
            f"tenant {tenant!r} is not allowed: use 1-63 lowercase letters, digits, . _ or - "
            "(for example --tenant acme)"
        )


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """What the database knows about a key, minus its hash."""

    id: str
    name: str
    tenant: str
    roles: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def status(self, now: datetime) -> KeyStatus:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def to_json(self, now: datetime) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "name": self.name,
            "tenant": self.tenant,
            "roles": list(self.roles),
            "status": self.status(now),
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "last_used_at": iso(self.last_used_at),
            "revoked_at": iso(self.revoked_at),
        }


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just created: `key` is the only copy of the secret there will ever be."""

    record: ApiKeyRecord
    key: str
