"""Who is calling the gateway: principals, API keys and authenticators.

principal           Principal, the caller every authenticator produces
api_keys            key format, hashing, records
key_store           ApiKeyStore on `gateway.api_keys`
authenticate        Authenticator ABC, ChainAuthenticator, LoopbackTestAuthenticator
key_authenticator   ApiKeyAuthenticator (cached, follows revocations)
responses           unauthorized_response for Starlette
"""

from gateway.auth.api_keys import KEY_PREFIX, ApiKeyRecord, KeyHasher, NewApiKey, generate_key, parse_key
from gateway.auth.authenticate import (
    AUTH_FAILURES,
    Authenticator,
    AuthFailure,
    ChainAuthenticator,
    LoopbackTestAuthenticator,
    bearer_token,
)
from gateway.auth.errors import ApiKeyUsageError, AuthError, AuthUnavailableError
from gateway.auth.key_authenticator import ApiKeyAuthenticator
from gateway.auth.key_store import REVOCATION_CHANNEL, ApiKeyStore, StoredKey
from gateway.auth.principal import AuthMethod, Principal
from gateway.auth.responses import unauthorized_response, www_authenticate

__all__ = [
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
]
