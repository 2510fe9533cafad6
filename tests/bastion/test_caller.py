"""The signed caller context: what the gateway signs, a server accepts, and nothing else."""

from __future__ import annotations

import base64
import copy
import json
import secrets
from typing import Any

import pytest

from bastion.caller import META_KEY, CallerContext, Obligations, sign_caller, verify_caller
from bastion.errors import CallerContextError

NOW = 1_800_000_000.0
KEY = secrets.token_bytes(32)


def _context(**overrides: Any) -> CallerContext:
    fields: dict[str, Any] = {
        "subject": "alice",
        "tenant": "acme",
        "roles": ("analyst",),
        "obligations": Obligations(
            allowed_collections=("docs", "wiki"),
            allowed_datasets=("sales",),
            row_limit=500,
            redact=("email",),
        ),
        "ttl": 60,
        "now": NOW,
    }
    fields.update(overrides)
    return CallerContext.expiring(**fields)


def test_meta_key_is_the_one_the_gateway_uses() -> None:
    assert META_KEY == "bastion/caller"


def test_a_signed_context_verifies_to_the_same_context() -> None:
    ctx = _context()
    assert verify_caller(sign_caller(ctx, KEY), KEY, now=NOW) == ctx


def test_the_wire_form_survives_a_json_round_trip() -> None:
    ctx = _context()
    wire = json.loads(json.dumps(sign_caller(ctx, KEY)))
    assert verify_caller(wire, KEY, now=NOW + 30) == ctx


def test_the_signature_is_unpadded_base64url_of_a_sha256_mac() -> None:
    sig = sign_caller(_context(), KEY)["sig"]
    assert "=" not in sig and "+" not in sig and "/" not in sig
    assert len(base64.urlsafe_b64decode(sig + "=")) == 32


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("subject",), "mallory"),
        (("tenant",), "other-tenant"),
        (("roles",), ["analyst", "admin"]),
        (("obligations", "allowed_collections"), None),
        (("obligations", "allowed_collections"), ["docs", "wiki", "secrets"]),
        (("obligations", "allowed_datasets"), ["sales", "payroll"]),
        (("obligations", "row_limit"), 1_000_000),
        (("obligations", "row_limit"), None),
        (("obligations", "redact"), []),
        (("expires_at",), int(NOW) + 86_400),
        (("v",), 2),
    ],
)
def test_changing_any_signed_field_breaks_the_signature(path: tuple[str, ...], value: Any) -> None:
    wire = copy.deepcopy(sign_caller(_context(), KEY))
    target = wire["claims"]
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(
        CallerContextError, match="signature does not match: it was not signed with this instance"
    ):
        verify_caller(wire, KEY, now=NOW)


def test_adding_a_claim_breaks_the_signature() -> None:
    wire = sign_caller(_context(), KEY)
    wire["claims"]["roles_extra"] = ["admin"]
    with pytest.raises(CallerContextError, match="signature does not match"):
        verify_caller(wire, KEY, now=NOW)


def test_a_context_signed_with_another_key_is_refused() -> None:
    wire = sign_caller(_context(), secrets.token_bytes(32))
    with pytest.raises(CallerContextError, match="not signed with this instance's key"):
        verify_caller(wire, KEY, now=NOW)


def test_a_replaced_signature_is_refused() -> None:
    wire = sign_caller(_context(), KEY)
    wire["sig"] = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    with pytest.raises(CallerContextError, match="signature does not match"):
        verify_caller(wire, KEY, now=NOW)


def test_an_expired_context_is_refused_naming_both_times() -> None:
    wire = sign_caller(_context(ttl=60), KEY)
    with pytest.raises(CallerContextError) as info:
        verify_caller(wire, KEY, now=NOW + 120)
    message = info.value.message
    assert message.startswith("caller context expired at 2027-01-15T08:01:00Z (now 2027-01-15T08:02:00Z)")
    assert info.value.status_code == 401


def test_expiry_allows_a_few_seconds_of_clock_skew() -> None:
    ctx = _context(ttl=60)
    assert verify_caller(sign_caller(ctx, KEY), KEY, now=NOW + 64) == ctx
    with pytest.raises(CallerContextError, match="expired"):
        verify_caller(sign_caller(ctx, KEY), KEY, now=NOW + 66)
    with pytest.raises(CallerContextError, match="expired"):
        verify_caller(sign_caller(ctx, KEY), KEY, now=NOW + 61, leeway=0)


@pytest.mark.parametrize(
    "wire",
    [
        None,
        "a string",
        ["claims", "sig"],
        {},
        {"claims": {"subject": "alice"}},
        {"sig": "abc"},
        {"claims": "not an object", "sig": "abc"},
        {"claims": {}, "sig": 42},
        {"claims": {}, "sig": "!!! not base64 !!!"},
    ],
)
def test_a_malformed_context_is_refused_as_malformed(wire: object) -> None:
    with pytest.raises(CallerContextError, match=r"^malformed caller context"):
        verify_caller(wire, KEY, now=NOW)


def test_correctly_signed_claims_of_the_wrong_shape_are_refused_as_malformed() -> None:
    claims: dict[str, Any] = {
        "v": 1,
        "subject": "alice",
        "tenant": "acme",
        "roles": "admin",
        "expires_at": "x",
    }
    from bastion.caller import _mac  # pyright: ignore[reportPrivateUsage]

    wire = {"claims": claims, "sig": base64.urlsafe_b64encode(_mac(claims, KEY)).decode().rstrip("=")}
    with pytest.raises(CallerContextError, match=r"^malformed caller context claims: .*expires_at"):
        verify_caller(wire, KEY, now=NOW)


def test_a_context_without_expiry_cannot_be_signed() -> None:
    with pytest.raises(ValueError, match="must expire"):
        sign_caller(CallerContext.local_owner(), KEY)


def test_a_short_key_is_rejected_as_a_programming_error() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        sign_caller(_context(), b"short")


def test_the_local_owner_has_full_access() -> None:
    owner = CallerContext.local_owner()
    assert owner.is_local_owner
    assert owner.has_role("owner")
    assert owner.may_read_collection("anything") and owner.may_read_dataset("anything")
    assert owner.row_limit() is None and owner.row_limit(10) == 10
    assert not owner.must_redact("email")


def test_obligations_restrict_what_a_caller_may_read() -> None:
    ctx = _context()
    assert not ctx.is_local_owner
    assert ctx.may_read_collection("docs") and not ctx.may_read_collection("secrets")
    assert ctx.readable_collections(["secrets", "wiki", "docs"]) == ["wiki", "docs"]
    assert ctx.may_read_dataset("sales") and not ctx.may_read_dataset("payroll")
    assert ctx.readable_datasets(["payroll", "sales"]) == ["sales"]
    assert ctx.row_limit() == 500 and ctx.row_limit(10) == 10 and ctx.row_limit(10_000) == 500
    assert ctx.must_redact("email") and not ctx.must_redact("name")


def test_a_caller_context_is_immutable() -> None:
    ctx = _context()
    with pytest.raises(ValueError, match="frozen"):
        ctx.subject = "mallory"  # type: ignore[misc]
