"""Errors of the gateway's authentication package.

A failed authentication is not an exception: authenticators answer `None` (or an
`AuthFailure`) and the caller answers 401. Exceptions are for misuse and outages:

    AuthError                 base of this package's errors
    ├── ApiKeyUsageError      bad name, role or tenant, unknown key id (ConfigError, exit 2)
    └── AuthUnavailableError  the key table cannot be read (RuntimeFailure, HTTP 503)
"""

from __future__ import annotations

from bastion.errors import BastionError, ConfigError, RuntimeFailure

__all__ = ["ApiKeyUsageError", "AuthError", "AuthUnavailableError"]


class AuthError(BastionError):
    """Base of every error raised on purpose by `gateway.auth`."""


class ApiKeyUsageError(AuthError, ConfigError):
    """An API key operation was asked with bad input; the message names the fix."""


class AuthUnavailableError(AuthError, RuntimeFailure):
    """Credentials could not be checked because their store failed; retry later."""

    status_code = 503
