"""The authenticator chain and the loopback test principal."""

from __future__ import annotations

import pytest

from gateway.auth import (
    Authenticator,
    AuthFailure,
    ChainAuthenticator,
    LoopbackTestAuthenticator,
    Principal,
    bearer_token,
)

ALICE = Principal("alice", "default", ("analyst",), ("mcp",), "oauth")


class OAuthLikeAuthenticator(Authenticator):
    """Stands in for the OAuth authenticator of a later issue: one token, else not mine."""

    async def _verify(
        self, authorization_header: str | None, client_host: str | None
    ) -> Principal | AuthFailure:
        token = bearer_token(authorization_header)
        if isinstance(token, AuthFailure):
            return token
        if token == "good-jwt":
            return ALICE
        if token.startswith("eyJ"):
            return AuthFailure("invalid", "token signature does not verify")
        return AuthFailure("unsupported", "not a JWT")


def test_bearer_tokens_are_read_from_the_header() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("BEARER  abc ") == "abc"
    missing = bearer_token(None)
    assert isinstance(missing, AuthFailure) and missing.reason == "missing"
    basic = bearer_token("Basic abc")
    assert isinstance(basic, AuthFailure) and basic.reason == "malformed"


async def test_the_chain_returns_the_first_principal() -> None:
    chain = ChainAuthenticator(LoopbackTestAuthenticator("conformance"), OAuthLikeAuthenticator())
    assert await chain.authenticate("Bearer good-jwt", "127.0.0.1") == ALICE


async def test_a_definite_failure_stops_the_chain_before_the_loopback_principal() -> None:
    chain = ChainAuthenticator(OAuthLikeAuthenticator(), LoopbackTestAuthenticator("conformance"))
    result = await chain.verify("Bearer eyJbad", "127.0.0.1")
    assert isinstance(result, AuthFailure) and result.reason == "invalid"


async def test_credentials_nobody_understands_are_reported_as_unsupported() -> None:
    chain = ChainAuthenticator(OAuthLikeAuthenticator(), LoopbackTestAuthenticator("conformance"))
    result = await chain.verify("Bearer something-else", "127.0.0.1")
    assert isinstance(result, AuthFailure) and result.reason == "unsupported"


@pytest.mark.parametrize(
    ("header", "host", "admitted"),
    [
        (None, "127.0.0.1", True),
        (None, "::1", True),
        (None, "10.0.0.7", False),
        (None, None, False),
        (None, "testclient", False),
        ("Bearer whatever", "127.0.0.1", False),
    ],
)
async def test_the_loopback_principal_admits_only_credential_less_loopback_clients(
    header: str | None, host: str | None, admitted: bool
) -> None:
    auth = LoopbackTestAuthenticator("conformance", roles=("viewer",))
    principal = await auth.authenticate(header, host)
    if admitted:
        assert principal == Principal("conformance", "default", ("viewer",), (), "loopback_test")
    else:
        assert principal is None


def test_a_chain_needs_at_least_one_authenticator() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ChainAuthenticator()
