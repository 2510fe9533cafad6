"""The official MCP conformance suite, directly against the fixture and through the gateway.

Both runs use the checked-in expected-failures baseline, so the suite's own exit code
says "only known failures". Transparency is the stronger claim: every check that
passes against the fixture directly passes through the gateway too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.gateway.interop.conformance import REVISIONS, ConformanceRun, baseline_path, run_conformance
from tests.gateway.interop.conftest import GatewayInstance
from tests.gateway.interop.node import NodeToolchain

RunSuite = Callable[[str, str], ConformanceRun]


@pytest.fixture(scope="module")
def run_suite(toolchain: NodeToolchain) -> RunSuite:
    """Run the suite once per (url, revision) in this module, with the baseline."""
    runs: dict[tuple[str, str], ConformanceRun] = {}

    def run(url: str, revision: str) -> ConformanceRun:
        if (url, revision) not in runs:
            with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
                runs[url, revision] = run_conformance(
                    url,
                    revision,
                    output_dir=Path(tmp),
                    expected_failures=baseline_path(revision),
                    toolchain=toolchain,
                )
        return runs[url, revision]

    return run


def _baseline_entries(revision: str) -> set[str]:
    lines = baseline_path(revision).read_text().splitlines()
    return {line.strip()[2:].strip() for line in lines if line.strip().startswith("- ")}


@pytest.mark.parametrize("revision", REVISIONS)
def test_the_fixture_fails_only_what_its_baseline_lists(
    run_suite: RunSuite, fixture_server_url: str, revision: str
) -> None:
    run = run_suite(fixture_server_url, revision)
    assert run.returncode == 0, f"the suite rejected the baseline:\n{run.output[-3000:]}"
    entries = _baseline_entries(revision)
    unexpected = {key for key in run.failed if f"{key[0]}:{key[1]}" not in entries}
    stale = entries - {f"{scenario}:{check}" for scenario, check in run.failed}
    assert not unexpected, f"failures missing from the baseline:\n{run.describe(unexpected)}"
    assert not stale, f"baseline entries that no longer fail (remove them): {sorted(stale)}"


@pytest.mark.parametrize("revision", REVISIONS)
def test_every_scenario_the_revision_scores_passes_directly(
    run_suite: RunSuite, fixture_server_url: str, revision: str
) -> None:
    run = run_suite(fixture_server_url, revision)
    not_scored_prefixes = ("tasks-",)  # the tasks extension: run for visibility, never scored
    scored_failures = {key for key in run.failed if not key[0].startswith(not_scored_prefixes)}
    assert not scored_failures, run.describe(scored_failures)
    assert len(run.passed) >= 60, f"suspiciously few passing checks ({len(run.passed)}): did scenarios run?"


# The fixture behind the gateway, over each transport: virtual server per upstream.
VIA = {"stdio": "conformance", "http": "conformance-http"}


def _known_losses(transport: str, revision: str) -> set[tuple[str, str]]:
    """The documented gaps through the gateway (docs/conformance.md), as (scenario, check)."""
    path = Path(__file__).with_name(f"gateway-losses-{transport}-{revision}.yml")
    entries = [
        line.strip()[2:].strip() for line in path.read_text().splitlines() if line.strip().startswith("- ")
    ]
    return {(entry.split(":", 1)[0], entry.split(":", 1)[1]) for entry in entries}


@pytest.mark.parametrize("transport", sorted(VIA))
@pytest.mark.parametrize("revision", REVISIONS)
def test_every_check_that_passes_directly_passes_through_the_gateway(
    run_suite: RunSuite,
    fixture_server_url: str,
    gateway_instance: GatewayInstance,
    revision: str,
    transport: str,
) -> None:
    direct = run_suite(fixture_server_url, revision)
    through = run_suite(gateway_instance.mcp_url(VIA[transport]), revision)
    lost = direct.passed - through.passed
    known = _known_losses(transport, revision)
    unexplained = lost - known
    assert not unexplained, (
        f"{len(unexplained)} check(s) pass directly but not through the gateway:\n"
        f"{through.describe(unexplained)}"
    )
    stale = {entry for entry in known if entry in through.passed}
    assert not stale, f"documented gateway gaps that now pass (remove them): {sorted(stale)}"
    # The suite's exit code only knows the fixture's baseline; through the gateway the known
    # gaps fail too. Anything else failing is a regression.
    unexpected = through.failed - direct.failed - known
    assert not unexpected, f"unexpected failures through the gateway:\n{through.describe(unexpected)}"
