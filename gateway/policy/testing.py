"""Running Rego tests (`test_*` rules in `*_test.rego` files) on any evaluator.

Semantics follow `opa test`: a test passes when its rule evaluates to true; false or
undefined fails; an evaluation error is an error. Rules named `todo_test_*` are skipped.
Discovery reads the files' text, so the same tests run on the embedded engine and through
an OPA server that loaded the same folder.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway.policy.bundle import TEST_SUFFIX
from gateway.policy.engine import RegoEvaluator
from gateway.policy.errors import PolicyError, PolicyLoadError

__all__ = ["RegoTestCase", "RegoTestOutcome", "discover_tests", "run_tests"]

_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_TEST_RULE = re.compile(r"^((?:todo_)?test_\w+)\b", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class RegoTestCase:
    file: str
    package: str
    name: str

    @property
    def path(self) -> str:
        return f"{self.package}.{self.name}"

    @property
    def skipped(self) -> bool:
        return self.name.startswith("todo_")


@dataclass(frozen=True, slots=True)
class RegoTestOutcome:
    case: RegoTestCase
    result: Literal["pass", "fail", "error", "skip"]
    seconds: float
    detail: str | None = None


def discover_tests(folder: Path) -> list[RegoTestCase]:
    """Every `test_*` rule of every `*_test.rego` under `folder`, in file order."""
    cases: list[RegoTestCase] = []
    for path in sorted(folder.rglob(f"*{TEST_SUFFIX}")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        text = path.read_text(encoding="utf-8")
        package = _PACKAGE.search(text)
        if package is None:
            raise PolicyLoadError(f"{path}: no `package` line. Every Rego file starts with one.")
        names = dict.fromkeys(_TEST_RULE.findall(text))  # a test may have several bodies
        relative = str(path.relative_to(folder))
        cases += [RegoTestCase(relative, package.group(1), name) for name in names]
    return cases


async def run_tests(evaluator: RegoEvaluator, cases: list[RegoTestCase]) -> list[RegoTestOutcome]:
    outcomes: list[RegoTestOutcome] = []
    for case in cases:
        if case.skipped:
            outcomes.append(RegoTestOutcome(case, "skip", 0.0))
            continue
        started = time.perf_counter()
        try:
            value = await evaluator.query(case.path.replace(".", "/"), {})
        except PolicyError as exc:
            outcomes.append(RegoTestOutcome(case, "error", time.perf_counter() - started, exc.message))
            continue
        elapsed = time.perf_counter() - started
        if value is True:
            outcomes.append(RegoTestOutcome(case, "pass", elapsed))
        else:
            outcomes.append(RegoTestOutcome(case, "fail", elapsed, f"evaluated to {value!r}, not true"))
    return outcomes
