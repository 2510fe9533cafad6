"""The public surface of `gateway.auth`: adding a name is a decision."""

from __future__ import annotations

import gateway.auth

EXPECTED = {
    "AUTH_FAILURES",
    "KEY_PREFIX",
    "REVOCATION_CHANNEL",
    "ApiKeyAuthenticator",
    "ApiKeyRecord",
    "ApiKeyStore",
    "ApiKeyUsageError",
    "AuthError",
    "AuthFailure",
    "AuthMethod",
    "AuthUnavailableError",
    "Authenticator",
    "ChainAuthenticator",
    "KeyHasher",
    "LoopbackTestAuthenticator",
    "NewApiKey",
    "Principal",
    "StoredKey",
    "bearer_token",
    "generate_key",
    "parse_key",
    "unauthorized_response",
    "www_authenticate",
}


def test_the_package_exports_exactly_its_public_names() -> None:
    assert set(gateway.auth.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(gateway.auth, name) is not None
