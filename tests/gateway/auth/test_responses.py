from __future__ import annotations

import orjson

from gateway.auth import AuthFailure, unauthorized_response


def test_no_credentials_get_a_bare_bearer_challenge_and_how_to_get_a_key() -> None:
    response = unauthorized_response()
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="bastion"'
    body = orjson.loads(response.body)
    assert body["error"] == "unauthorized"
    assert "bastion keys create --name NAME --role ROLE" in body["hint"]


def test_a_refused_key_gets_invalid_token_with_a_safe_description() -> None:
    response = unauthorized_response(AuthFailure("revoked", 'this "key" was revoked'))
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="bastion", error="invalid_token", error_description="')
    assert challenge.count('"') == 6
    body = orjson.loads(response.body)
    assert body["error"] == "invalid_token" and "revoked" in body["error_description"]
    assert response.headers["content-type"] == "application/json"


def test_a_plain_message_is_accepted_as_the_reason() -> None:
    response = unauthorized_response("token expired")
    assert 'error_description="token expired"' in response.headers["www-authenticate"]
