"""Authenticators: turn a request's `Authorization` header into a `Principal`.

`Authenticator` is the extension point. Each implementation answers with a
`Principal` or an `AuthFailure` naming why not; `authenticate` is the short form
(`None` on failure) and `verify` the long one, for building the 401 response.

A failure whose reason is `missing` or `unsupported` means "not mine": the request
carried no credentials, or credentials this authenticator does not handle (an OAuth
token seen by the API key authenticator). `ChainAuthenticator` tries the next one on
those, and stops at the first definite failure (a revoked key must not fall through to
an authenticator that admits anonymous loopback clients).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

from prometheus_client import Counter

from bastion.metrics import REGISTRY
from bastion.net import is_loopback
from gateway.auth.principal import Principal

__all__ = [
    "AUTH_FAILURES",
    "AuthFailure",
    "Authenticator",
    "ChainAuthenticator",
    "LoopbackTestAuthenticator",
    "bearer_token",
]

FailureReason = Literal["missing", "unsupported", "malformed", "unknown", "invalid", "revoked", "expired"]
PASS_REASONS = frozenset({"missing", "unsupported"})

AUTH_FAILURES = Counter(
    "bastion_auth_failures",
    "Requests whose credentials were refused, by reason",
    ["reason"],
    registry=REGISTRY,
)


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """Why a request was not authenticated; `message` is safe to show the client."""

    reason: FailureReason
    message: str


MISSING = AuthFailure("missing", "this endpoint needs credentials: send `Authorization: Bearer <key>`")
NOT_BEARER = AuthFailure("malformed", "the Authorization header must read `Bearer <key>`")


def bearer_token(authorization_header: str | None) -> str | AuthFailure:
    """The token of a `Bearer` header, or the failure to report."""
    if not authorization_header:
        return MISSING
    scheme, _, token = authorization_header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return NOT_BEARER
    return token


class Authenticator(ABC):
    """Turns request credentials into a `Principal`."""

    @abstractmethod
    async def _verify(
        self, authorization_header: str | None, client_host: str | None
    ) -> Principal | AuthFailure:
        """The principal, or why not; subclasses implement this and count nothing."""

    async def verify(
        self, authorization_header: str | None, client_host: str | None
    ) -> Principal | AuthFailure:
        """The principal, or why not (counted in `bastion_auth_failures_total`)."""
        result = await self._verify(authorization_header, client_host)
        if isinstance(result, AuthFailure):
            AUTH_FAILURES.labels(result.reason).inc()
        return result

    async def authenticate(
        self, authorization_header: str | None, client_host: str | None
    ) -> Principal | None:
        """The principal, or None when the request must be answered with 401."""
        result = await self.verify(authorization_header, client_host)
        return result if isinstance(result, Principal) else None


class ChainAuthenticator(Authenticator):
    """Tries authenticators in order; the first principal or definite failure wins."""

    def __init__(self, *authenticators: Authenticator) -> None:
        if not authenticators:
            raise ValueError("ChainAuthenticator needs at least one authenticator")
        self.authenticators = authenticators

    async def _verify(
        self, authorization_header: str | None, client_host: str | None
    ) -> Principal | AuthFailure:
        passed: AuthFailure | None = None
        for authenticator in self.authenticators:
            result = await authenticator._verify(authorization_header, client_host)
            if isinstance(result, Principal) or result.reason not in PASS_REASONS:
                return result
            # Prefer "unsupported" (credentials nobody understood) over "missing".
            if passed is None or result.reason == "unsupported":
                passed = result
        assert passed is not None
        return passed


class LoopbackTestAuthenticator(Authenticator):
    """Admits requests without credentials from a loopback address as one fixed principal.

    For test clients that cannot send credentials (the MCP conformance suite). The
    gateway enables it only by setting, on a dedicated virtual server, and never when
    it listens beyond loopback. A request that does carry credentials is not admitted
    here: it is left to the other authenticators.
    """

    def __init__(
        self, subject: str, *, tenant: str = "default", roles: tuple[str, ...] = ("viewer",)
    ) -> None:
        self.principal = Principal(subject, tenant, roles, (), "loopback_test")

    async def _verify(
        self, authorization_header: str | None, client_host: str | None
    ) -> Principal | AuthFailure:
        if authorization_header:
            return AuthFailure("unsupported", "credentials are not used by the loopback test principal")
        if not is_loopback(client_host):
            return MISSING
        return self.principal
