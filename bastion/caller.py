"""Who is calling a server, and what policy lets them do: the signed caller context.

The gateway decides each request with policy, then tells the upstream server the
outcome by putting a caller context in the request's MCP `_meta` under `META_KEY`.
Its wire form is a small JSON object:

    {"claims": {"v": 1, "subject": "alice", "tenant": "acme", "roles": ["analyst"],
                "obligations": {"allowed_collections": ["docs"], "allowed_datasets": null,
                                "row_limit": 1000, "redact": ["email"]},
                "expires_at": 1767225600},
     "sig": "<base64url HMAC-SHA256 without padding>"}

The signature covers `SIGNING_DOMAIN` followed by the canonical JSON of `claims`
(sorted keys, no spaces, UTF-8), keyed with the instance key under `BASTION_HOME`.
Verifying recomputes it over the claims exactly as received, so signer and verifier
never depend on how a model re-serialises them.
"""

from __future__ import annotations

import base64
import binascii
import functools
import getpass
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.errors import CallerContextError

__all__ = [
    "META_KEY",
    "CallerContext",
    "Obligations",
    "sign_caller",
    "verify_caller",
]

META_KEY = "bastion/caller"
WIRE_VERSION = 1
# Prefix of every signed message: the instance key also encrypts secrets, and a MAC
# made for one purpose must never be accepted for another.
SIGNING_DOMAIN = b"bastion/caller/v1\n"
LOCAL_OWNER_ROLE = "owner"


class Obligations(BaseModel):
    """What policy requires of the server for this request. `None` means "no limit"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_collections: tuple[str, ...] | None = None
    allowed_datasets: tuple[str, ...] | None = None
    row_limit: int | None = Field(default=None, ge=0)
    redact: tuple[str, ...] = ()


class CallerContext(BaseModel):
    """A verified caller: identity, tenant, roles, obligations and expiry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str = Field(min_length=1)
    tenant: str = Field(min_length=1)
    roles: tuple[str, ...] = ()
    obligations: Obligations = Field(default_factory=Obligations)
    # Epoch seconds. None only for the local owner, who is never signed or sent.
    expires_at: int | None = None

    @classmethod
    def local_owner(cls) -> CallerContext:
        """The person running `bastion serve` over stdio for their own client: full access."""
        return _local_owner()

    @classmethod
    def expiring(
        cls,
        *,
        subject: str,
        tenant: str,
        roles: Iterable[str] = (),
        obligations: Obligations | None = None,
        ttl: float = 60,
        now: float | None = None,
    ) -> CallerContext:
        """A context for one request, valid for `ttl` seconds: what the gateway signs."""
        issued = time.time() if now is None else now
        return cls(
            subject=subject,
            tenant=tenant,
            roles=tuple(roles),
            obligations=obligations or Obligations(),
            expires_at=int(issued + ttl),
        )

    @property
    def is_local_owner(self) -> bool:
        return self.expires_at is None and LOCAL_OWNER_ROLE in self.roles and self.tenant == "local"

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def may_read_collection(self, name: str) -> bool:
        allowed = self.obligations.allowed_collections
        return allowed is None or name in allowed

    def may_read_dataset(self, name: str) -> bool:
        allowed = self.obligations.allowed_datasets
        return allowed is None or name in allowed

    def readable_collections(self, names: Iterable[str]) -> list[str]:
        """`names` filtered down to the collections this caller may read, order kept."""
        return [name for name in names if self.may_read_collection(name)]

    def readable_datasets(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if self.may_read_dataset(name)]

    def row_limit(self, requested: int | None = None) -> int | None:
        """The row cap to apply: the smaller of what was asked and what policy allows."""
        cap = self.obligations.row_limit
        if requested is None:
            return cap
        return requested if cap is None else min(requested, cap)

    def must_redact(self, field: str) -> bool:
        return field in self.obligations.redact


def _canonical(claims: Mapping[str, Any]) -> bytes:
    return json.dumps(
        claims, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _mac(claims: Mapping[str, Any], key: bytes) -> bytes:
    return hmac.new(key, SIGNING_DOMAIN + _canonical(claims), hashlib.sha256).digest()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_key(key: bytes) -> None:
    if len(key) < 16:
        raise ValueError(f"the caller-context key must be the instance key (32 bytes), got {len(key)} bytes")


def sign_caller(ctx: CallerContext, key: bytes) -> dict[str, Any]:
    """The wire form of `ctx`, to put under `_meta[META_KEY]` of one request."""
    _check_key(key)
    if ctx.expires_at is None:
        raise ValueError("a signed caller context must expire: build it with CallerContext.expiring(...)")
    claims: dict[str, Any] = {"v": WIRE_VERSION, **ctx.model_dump(mode="json")}
    return {"claims": claims, "sig": _b64url(_mac(claims, key))}


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def verify_caller(wire: object, key: bytes, *, now: float | None = None, leeway: float = 5) -> CallerContext:
    """Check the signature and expiry of a caller context; return it or raise CallerContextError."""
    _check_key(key)
    if not isinstance(wire, Mapping):
        raise CallerContextError(
            f"malformed caller context: _meta[{META_KEY!r}] must be an object with 'claims' and 'sig', "
            f"got {type(wire).__name__}"
        )
    fields: Mapping[str, Any] = wire  # pyright: ignore[reportUnknownVariableType]
    claims, sig = fields.get("claims"), fields.get("sig")
    if not isinstance(claims, Mapping) or not isinstance(sig, str):
        raise CallerContextError(
            f"malformed caller context: _meta[{META_KEY!r}] must hold an object 'claims' and a string 'sig'"
        )
    try:
        given = _unb64url(sig)
    except (binascii.Error, ValueError):
        raise CallerContextError("malformed caller context: 'sig' is not base64url") from None
    try:
        expected = _mac(claims, key)  # pyright: ignore[reportUnknownArgumentType]
    except (TypeError, ValueError) as exc:
        raise CallerContextError(f"malformed caller context: claims are not plain JSON ({exc})") from None
    if not hmac.compare_digest(given, expected):
        raise CallerContextError(
            "caller context signature does not match: it was not signed with this instance's key "
            "(or it was altered after signing). Send requests through the gateway of this instance."
        )
    body = dict(claims)  # pyright: ignore[reportUnknownArgumentType]
    version = body.pop("v", None)
    if version != WIRE_VERSION:
        raise CallerContextError(
            f"malformed caller context: unsupported version {version!r} (this server reads v{WIRE_VERSION})"
        )
    try:
        ctx = CallerContext.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'claims'}: {e['msg']}" for e in exc.errors())
        raise CallerContextError(f"malformed caller context claims: {problems}") from None
    if ctx.expires_at is None:
        raise CallerContextError("malformed caller context claims: expires_at is required")
    current = time.time() if now is None else now
    if current > ctx.expires_at + leeway:
        raise CallerContextError(
            f"caller context expired at {_when(ctx.expires_at)} (now {_when(current)}). "
            "The gateway signs a fresh context per request; check both clocks if this repeats."
        )
    return ctx


@functools.cache
def _local_owner() -> CallerContext:
    # Asked on every unsigned stdio call; the user name does not change while we run.
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "owner"
    return CallerContext(subject=f"local:{user}", tenant="local", roles=(LOCAL_OWNER_ROLE,))
