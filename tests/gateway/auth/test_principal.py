from __future__ import annotations

import dataclasses

import pytest

from gateway.auth import Principal


def test_policy_input_carries_identity_roles_and_method_as_json_lists() -> None:
    principal = Principal("ci-bot", "acme", ("analyst", "viewer"), ("mcp",), "api_key", key_id="0123456789ab")
    assert principal.to_policy_input() == {
        "subject": "ci-bot",
        "tenant": "acme",
        "roles": ["analyst", "viewer"],
        "scopes": ["mcp"],
        "auth_method": "api_key",
    }


def test_a_principal_cannot_be_changed_after_authentication() -> None:
    principal = Principal("alice", "default", ("viewer",), (), "oauth")
    with pytest.raises(dataclasses.FrozenInstanceError):
        principal.roles = ("admin",)  # type: ignore[misc]
