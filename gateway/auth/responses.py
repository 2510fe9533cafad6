"""HTTP 401 answers for requests that could not be authenticated (RFC 6750)."""

from __future__ import annotations

import orjson
from starlette.responses import Response

from gateway.auth.authenticate import MISSING, AuthFailure

__all__ = ["KEY_HINT", "REALM", "unauthorized_response", "www_authenticate"]

REALM = "bastion"
KEY_HINT = (
    "create a key with `bastion keys create --name NAME --role ROLE` and send it as "
    "`Authorization: Bearer <key>`"
)


def _quoted(text: str) -> str:
    # RFC 6750 values are quoted strings: no quotes or backslashes inside.
    return text.replace("\\", "").replace('"', "'")


def www_authenticate(failure: AuthFailure) -> str:
    """The challenge: no error code when no credentials came (RFC 6750 section 3.1)."""
    if failure.reason == "missing":
        return f'Bearer realm="{REALM}"'
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{_quoted(failure.message)}"'


def unauthorized_response(reason: AuthFailure | str | None = None) -> Response:
    """401 with `WWW-Authenticate` and a JSON body saying what failed and how to get a key.

    `reason` is the `AuthFailure` from `Authenticator.verify` (best), a message, or None
    for "no credentials".
    """
    if reason is None:
        failure = MISSING
    elif isinstance(reason, str):
        failure = AuthFailure("invalid", reason)
    else:
        failure = reason
    error = "unauthorized" if failure.reason == "missing" else "invalid_token"
    body = {"error": error, "error_description": failure.message, "hint": KEY_HINT}
    return Response(
        orjson.dumps(body),
        status_code=401,
        media_type="application/json",
        headers={"WWW-Authenticate": www_authenticate(failure)},
    )
