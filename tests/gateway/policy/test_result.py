"""Decision documents are read strictly: anything malformed is an error, never an allow."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.policy import PolicyEvaluationError
from gateway.policy.result import decision_from_result

GOOD_OBLIGATIONS: dict[str, Any] = {
    "require_approval": False,
    "redact": ["email"],
    "row_limit": 100,
    "rate": {"per_minute": 60, "burst": 10},
    "allowed_collections": None,
    "allowed_datasets": ["sales"],
}


def test_a_well_formed_decision_is_read_in_full() -> None:
    decision = decision_from_result({"allow": True, "reasons": ["allow: x"], "obligations": GOOD_OBLIGATIONS})
    assert decision.allow
    assert decision.reasons == ("allow: x",)
    assert decision.obligations.rate is not None
    assert decision.obligations.rate.burst == 10
    assert decision.obligations.allowed_datasets == ("sales",)
    assert decision.obligations.allowed_collections is None


def test_a_denial_without_reasons_still_names_one() -> None:
    decision = decision_from_result({"allow": False})
    assert decision.reasons == ("deny: the policy gave no reason",)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "produced no decision"),
        ([True], "produced a list"),
        ({"allow": "yes"}, "`allow` must be true or false"),
        ({"allow": True, "reasons": "ok"}, "`reasons` must be a list of strings"),
        ({"allow": True, "obligations": {"row_limit": -1}}, "`row_limit` must be a non-negative integer"),
        ({"allow": True, "obligations": {"row_limit": True}}, "`row_limit` must be a non-negative integer"),
        ({"allow": True, "obligations": {"rate": {"per_minute": 0, "burst": 1}}}, "`rate` needs a positive"),
        ({"allow": True, "obligations": {"allowed_datasets": [1]}}, "`allowed_datasets` must be a list"),
        ({"allow": True, "obligations": {"watermark": True}}, "unknown obligations ['watermark']"),
        ({"allow": True, "obligations": []}, "`obligations` must be an object"),
    ],
)
def test_a_malformed_decision_is_an_error(value: Any, message: str) -> None:
    with pytest.raises(PolicyEvaluationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decision_from_result(value)
