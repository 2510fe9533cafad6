"""Run the official MCP conformance suite against a URL and read back every check.

The suite writes one `checks.json` per scenario into its output folder; a run here is
the set of `(scenario, check id) -> status` verdicts, with repeated ids collapsed
most-severe first (as the suite's own expected-failures matching does). Transparency
is then set arithmetic: the checks that pass directly must pass through the gateway.

    .venv/bin/python -m tests.gateway.interop.conformance --url http://127.0.0.1:9200/mcp
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.gateway.interop.node import CONFORMANCE, NodeToolchain, NodeToolError, node24

__all__ = ["REVISIONS", "ConformanceRun", "baseline_path", "run_conformance"]

REVISIONS = ("2025-11-25", "2026-07-28")
HERE = Path(__file__).resolve().parent
SEVERITY = {"FAILURE": 4, "WARNING": 3, "SKIPPED": 2, "INFO": 1, "SUCCESS": 0}
_RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")
_TOTAL = re.compile(r"Total: (?P<passed>\d+) passed, (?P<failed>\d+) failed")
_SCENARIO_LINE = re.compile(
    r"^[✓✗] (?P<scenario>\S+): (?P<passed>\d+) passed, (?P<failed>\d+) failed", re.MULTILINE
)
_NOT_SCORED = re.compile(r"^\s+[✓✗] (?P<scenario>\S+) \((?P<reason>[\w-]+)\)$", re.MULTILINE)


def baseline_path(revision: str) -> Path:
    return HERE / f"expected-failures-{revision}.yml"


@dataclass
class ConformanceRun:
    url: str
    revision: str
    returncode: int
    seconds: float
    output: str
    verdicts: dict[tuple[str, str], str] = field(default_factory=dict[tuple[str, str], str])
    messages: dict[tuple[str, str], str] = field(default_factory=dict[tuple[str, str], str])

    def with_status(self, status: str) -> set[tuple[str, str]]:
        return {key for key, verdict in self.verdicts.items() if verdict == status}

    @property
    def passed(self) -> set[tuple[str, str]]:
        return self.with_status("SUCCESS")

    @property
    def failed(self) -> set[tuple[str, str]]:
        return self.with_status("FAILURE")

    @property
    def totals(self) -> tuple[int, int]:
        """The suite's own `Total: N passed, M failed` line."""
        match = _TOTAL.search(self.output)
        if match is None:
            raise NodeToolError(f"the conformance run printed no summary:\n{self.output[-2000:]}")
        return int(match["passed"]), int(match["failed"])

    @property
    def not_scored(self) -> set[str]:
        return {m["scenario"] for m in _NOT_SCORED.finditer(self.output)}

    @property
    def scored_totals(self) -> tuple[int, int]:
        """Passed and failed checks of the scenarios the revision scores (not extensions or pending)."""
        skip = self.not_scored
        rows = [m for m in _SCENARIO_LINE.finditer(self.output) if m["scenario"] not in skip]
        return sum(int(m["passed"]) for m in rows), sum(int(m["failed"]) for m in rows)

    def scenarios(self, status: str = "SUCCESS") -> list[str]:
        """Scenarios whose every check has `status` (by default: that passed completely)."""
        by_scenario: dict[str, set[str]] = {}
        for (scenario, _), verdict in self.verdicts.items():
            by_scenario.setdefault(scenario, set()).add(verdict)
        return sorted(s for s, verdicts in by_scenario.items() if verdicts <= {status, "INFO", "SKIPPED"})

    def describe(self, keys: set[tuple[str, str]]) -> str:
        return "\n".join(f"  {s}:{c} {self.messages.get((s, c), '')[:300]}" for s, c in sorted(keys))


def _read_checks(output_dir: Path) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]]:
    verdicts: dict[tuple[str, str], str] = {}
    messages: dict[tuple[str, str], str] = {}
    for checks_file in sorted(output_dir.glob("server-*/checks.json")):
        match = _RESULT_DIR.match(checks_file.parent.name)
        if match is None:
            continue
        for check in json.loads(checks_file.read_text()):
            key = (match["scenario"], str(check["id"]))
            status = str(check["status"])
            if SEVERITY.get(status, 4) >= SEVERITY.get(verdicts.get(key, "SUCCESS"), 0):
                verdicts[key] = status
                if check.get("errorMessage"):
                    messages[key] = str(check["errorMessage"])
    return verdicts, messages


def run_conformance(
    url: str,
    revision: str,
    *,
    output_dir: Path,
    expected_failures: Path | None = None,
    toolchain: NodeToolchain | None = None,
    timeout: float = 420.0,
) -> ConformanceRun:
    """Run every scenario `revision` requires against `url` and collect the verdicts."""
    toolchain = toolchain or node24()
    args = ["server", "--url", url, "--requirements", revision, "-o", str(output_dir)]
    if expected_failures is not None:
        args += ["--expected-failures", str(expected_failures)]
    started = time.perf_counter()
    done = toolchain.npx(CONFORMANCE, *args, timeout=timeout, cwd=output_dir)
    seconds = time.perf_counter() - started
    verdicts, messages = _read_checks(output_dir)
    run = ConformanceRun(
        url, revision, done.returncode, seconds, done.stdout + done.stderr, verdicts, messages
    )
    if not verdicts:
        raise NodeToolError(f"the conformance suite wrote no checks for {url}:\n{run.output[-3000:]}")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the MCP conformance suite and print a summary.")
    parser.add_argument(
        "--url", required=True, help="the Streamable HTTP endpoint, e.g. http://127.0.0.1:9200/mcp"
    )
    parser.add_argument("--revision", choices=REVISIONS, action="append", help="default: both revisions")
    parser.add_argument("--baseline", action="store_true", help="pass the checked-in expected-failures file")
    args = parser.parse_args()
    for revision in args.revision or REVISIONS:
        with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
            baseline = baseline_path(revision) if args.baseline else None
            run = run_conformance(args.url, revision, output_dir=Path(tmp), expected_failures=baseline)
        passed, failed = run.totals
        scored_passed, scored_failed = run.scored_totals
        scored = f"scored: {scored_passed} of {scored_passed + scored_failed}"
        print(f"{revision}: {passed} passed, {failed} failed ({scored})")
        print(f"  exit {run.returncode} in {run.seconds:.1f} s; failing checks:\n{run.describe(run.failed)}")


if __name__ == "__main__":
    main()
