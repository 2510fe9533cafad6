"""Every `test_*` rule of policies/*_test.rego passes on the embedded engine and through
the OPA REST client (against a server answering OPA's data API)."""

from __future__ import annotations

import pytest

from gateway.policy import EmbeddedRegoEngine, OpaRestEngine
from gateway.policy.bundle import default_policy_dir
from gateway.policy.testing import RegoTestCase, discover_tests, run_tests
from tests.gateway.policy.opa_server import OpaTestServer

CASES = discover_tests(default_policy_dir())


def test_the_shipped_policy_has_tests_for_each_area() -> None:
    files = {case.file for case in CASES}
    assert files == {"authz_test.rego", "arguments_test.rego", "obligations_test.rego"}
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.path)
async def test_rego_test_passes_on_the_embedded_engine(case: RegoTestCase) -> None:
    engine = EmbeddedRegoEngine(reload_interval=None, include_tests=True, strict=True)
    [outcome] = await run_tests(engine, [case])
    assert outcome.result == "pass", outcome.detail


async def test_every_rego_test_passes_through_the_opa_rest_client(opa_server: OpaTestServer) -> None:
    async with OpaRestEngine(opa_server.url) as client:
        outcomes = await run_tests(client, CASES)
    failed = [(o.case.path, o.result, o.detail) for o in outcomes if o.result != "pass"]
    assert failed == []
    assert opa_server.requests == len(CASES)


async def test_a_failing_rego_test_is_reported_as_failed(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / "p.rego").write_text(
        'package bastion.authz\n\ndecision := {"allow": false, "reasons": ["deny: x"], "obligations": null}\n'
    )
    (folder / "p_test.rego").write_text(
        "package bastion.p_test\n\nimport data.bastion.authz\n\n"
        "test_allows if authz.decision.allow\n\n"
        "test_denies if not authz.decision.allow\n\n"
        "test_broken if startswith(1, 2)\n\n"
        "todo_test_later if false\n"
    )
    engine = EmbeddedRegoEngine(folder, reload_interval=None, include_tests=True, strict=True)
    outcomes = await run_tests(engine, discover_tests(folder))
    assert [(o.case.name, o.result) for o in outcomes] == [
        ("test_allows", "fail"),
        ("test_denies", "pass"),
        ("test_broken", "error"),
        ("todo_test_later", "skip"),
    ]
