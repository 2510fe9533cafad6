"""docs/auth.md keeps up with the code: every metric, failure reason and key setting is described."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from bastion.metrics import REGISTRY
from gateway.auth.authenticate import FailureReason

DOC = Path(__file__).resolve().parents[3] / "docs" / "auth.md"

METRICS = [
    "bastion_auth_failures_total",
    "bastion_rate_limited_total",
    "bastion_rate_limit_store_errors_total",
    "bastion_audit_write_seconds",
    "bastion_audit_batch_size",
    "bastion_audit_write_failures_total",
]


@pytest.mark.parametrize("metric", METRICS)
def test_every_metric_is_registered_and_documented(metric: str) -> None:
    import gateway.audit
    import gateway.ratelimit

    assert gateway.audit is not None
    names = {sample.name for family in REGISTRY.collect() for sample in family.samples}
    names |= {family.name for family in REGISTRY.collect()}
    assert any(name.startswith(metric.removesuffix("_total")) for name in names), metric
    assert f"`{metric}" in DOC.read_text(), f"document {metric} in docs/auth.md"


@pytest.mark.parametrize("reason", get_args(FailureReason))
def test_every_authentication_failure_reason_is_documented(reason: str) -> None:
    assert f"| `{reason}` |" in DOC.read_text()


@pytest.mark.parametrize(
    "setting",
    [
        "api_key_cache_ttl",
        "rate_limit_per_second",
        "rate_limit_burst",
        "rate_limit_tool_per_second",
        "rate_limit_tool_burst",
        "audit_durability",
        "audit_refusal_window",
    ],
)
def test_every_gateway_auth_setting_is_documented(setting: str) -> None:
    assert f"| `{setting}` |" in DOC.read_text()
