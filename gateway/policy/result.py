"""Reading a decision document that a policy produced, strictly.

A policy is code an admin can change, and OPA is a network peer: whatever comes back is
checked field by field. Anything malformed raises `PolicyEvaluationError`, which engines
turn into a denial (fail closed).
"""

from __future__ import annotations

from typing import Any, TypeGuard

from gateway.policy.errors import PolicyEvaluationError
from gateway.policy.model import NO_ACCESS, Decision, Obligations, RateObligation

__all__ = ["decision_from_result"]

_OBLIGATION_KEYS = frozenset(
    {"require_approval", "redact", "row_limit", "rate", "allowed_collections", "allowed_datasets"}
)


def decision_from_result(value: Any, where: str = "the policy") -> Decision:
    """A `Decision` from `{"allow", "reasons", "obligations"}`; raises on anything else."""
    if not isinstance(value, dict):
        if value is None:
            raise PolicyEvaluationError(f"{where} produced no decision (is the policy package loaded?)")
        raise PolicyEvaluationError(f"{where} produced a {type(value).__name__}, not a decision object")
    allow = value.get("allow")
    if not isinstance(allow, bool):
        raise PolicyEvaluationError(f"{where}: `allow` must be true or false, got {allow!r}")
    reasons = _strings(value.get("reasons", []), "reasons", where)
    if not allow and not reasons:
        # A denial must say why, even when a custom policy forgets to.
        reasons = ("deny: the policy gave no reason",)
    raw = value.get("obligations")
    obligations = NO_ACCESS if raw is None and not allow else _obligations({} if raw is None else raw, where)
    return Decision(allow, reasons, obligations)


def _obligations(raw: Any, where: str) -> Obligations:
    if not isinstance(raw, dict):
        raise PolicyEvaluationError(f"{where}: `obligations` must be an object, got {raw!r}")
    unknown = set(raw) - _OBLIGATION_KEYS
    if unknown:
        # An obligation the gateway does not know cannot be enforced: refuse rather than ignore.
        raise PolicyEvaluationError(f"{where}: unknown obligations {sorted(unknown)}")
    approval = raw.get("require_approval", False)
    if not isinstance(approval, bool):
        raise PolicyEvaluationError(f"{where}: `require_approval` must be true or false")
    row_limit = raw.get("row_limit")
    if row_limit is not None and (
        not isinstance(row_limit, int) or isinstance(row_limit, bool) or row_limit < 0
    ):
        raise PolicyEvaluationError(f"{where}: `row_limit` must be a non-negative integer or null")
    return Obligations(
        require_approval=approval,
        redact=_strings(raw.get("redact", []), "redact", where),
        row_limit=row_limit,
        rate=_rate(raw.get("rate"), where),
        allowed_collections=_names_or_none(raw.get("allowed_collections"), "allowed_collections", where),
        allowed_datasets=_names_or_none(raw.get("allowed_datasets"), "allowed_datasets", where),
    )


def _rate(raw: Any, where: str) -> RateObligation | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise PolicyEvaluationError(f"{where}: `rate` must be an object or null")
    per_minute = raw.get("per_minute")
    burst = raw.get("burst")
    if not (_number(per_minute) and per_minute > 0 and _number(burst) and burst >= 1):
        raise PolicyEvaluationError(
            f"{where}: `rate` needs a positive `per_minute` and a `burst` of at least 1, got {raw!r}"
        )
    return RateObligation(float(per_minute), int(burst))


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _strings(raw: Any, name: str, where: str) -> tuple[str, ...]:
    if isinstance(raw, list | tuple | set | frozenset) and all(isinstance(item, str) for item in raw):
        items: Any = raw
        return tuple(sorted(items)) if isinstance(raw, set | frozenset) else tuple(items)
    raise PolicyEvaluationError(f"{where}: `{name}` must be a list of strings, got {raw!r}")


def _names_or_none(raw: Any, name: str, where: str) -> tuple[str, ...] | None:
    return None if raw is None else _strings(raw, name, where)
