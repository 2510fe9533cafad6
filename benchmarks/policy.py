"""Policy benchmark: choosing the embedded Rego engine, and the cost of a decision.

Part 1 (candidates) runs Bastion's own policy tests (policies/*_test.rego) and a typical
decision on each candidate engine, each in its own process so a crash cannot take the
benchmark down:
  - regorus   PyPI `gordon-to-regorus` (a fork of microsoft/regorus, Rust)
  - regopy    PyPI `regopy` (microsoft/rego-cpp, C++), interpreted and precompiled bundle
It also compares every candidate's decisions with regorus' on a corpus of requests.

Part 2 (bastion) measures the chosen engine as the gateway calls it: an uncached decision
(`EmbeddedRegoEngine.decide`), a cached one (`CachedPolicyEngine.decide`, key included),
and filtering a 60-tool `tools/list`. Targets: cached p50 <= 50 us, uncached p50 <= 0.5 ms.

    .venv/bin/python benchmarks/policy.py [--iterations N] [--json] [--skip-candidates]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
DECISION = "data.bastion.authz.decision"

TYPICAL = {
    "principal": {
        "subject": "alice",
        "tenant": "acme",
        "roles": ["analyst"],
        "scopes": [],
        "auth_method": "api_key",
    },
    "action": "tools/call",
    "resource": {
        "upstream": "analytics",
        "tool": "query",
        "arguments": {"sql": "select 1", "source": "sales"},
    },
    "context": {"time": "2026-05-01T10:00:00Z", "client_address": "127.0.0.1", "approval": "none"},
}


def corpus() -> list[dict[str, Any]]:
    """Requests across roles, actions, tools and arguments."""
    tools = [
        ("system", "version", {}),
        ("analytics", "query", {"sql": "select 1"}),
        ("analytics", "query", {"sql": "select 1", "source": "hr"}),
        ("analytics", "describe", {"dataset": "sales"}),
        ("analytics", "drop_dataset", {"name": "sales"}),
        ("analytics", "register_source", {"name": "crm", "dsn": "x"}),
        ("retrieval", "search", {"query": "q", "collections": ["handbook", "legal"]}),
        ("everything", "echo", {"message": "hi"}),
    ]
    requests: list[dict[str, Any]] = []
    for roles in (["admin"], ["analyst"], ["viewer"], ["service"], ["viewer", "analyst"], ["nobody"]):
        for action in ("tools/call", "tools/list"):
            for upstream, tool, arguments in tools:
                request = json.loads(json.dumps(TYPICAL))
                request["principal"]["roles"] = roles
                request["action"] = action
                request["resource"] = {"upstream": upstream, "tool": tool, "arguments": arguments}
                requests.append(request)
    return requests


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1] * 1e6, 1),
        "n": len(ordered),
    }


def _timed(function: Any, iterations: int) -> dict[str, float]:
    for _ in range(min(50, iterations)):
        function()
    samples: list[float] = []
    for _ in range(iterations):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return _percentiles(samples)


# -- part 1: candidates, each in a child process ----------------------------------


def _tests() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in sorted(POLICIES.glob("*_test.rego")):
        text = path.read_text()
        match = re.search(r"^package\s+([\w.]+)", text, re.MULTILINE)
        assert match is not None
        found += [
            (match.group(1), name) for name in dict.fromkeys(re.findall(r"^(test_\w+)", text, re.MULTILINE))
        ]
    return found


def _modules(include_tests: bool) -> list[tuple[str, str]]:
    return [
        (str(path), path.read_text())
        for path in sorted(POLICIES.glob("*.rego"))
        if include_tests or not path.name.endswith("_test.rego")
    ]


def child_regorus(iterations: int) -> None:
    import regorus  # type: ignore[import-untyped]

    engine = regorus.Engine()
    for name, text in _modules(include_tests=True):
        engine.add_policy(name, text)
    engine.add_data_json((POLICIES / "data.json").read_text())
    engine.set_input_json("{}")
    for package, name in _tests():
        try:
            passed = engine.eval_rule(f"data.{package}.{name}") is True
        except Exception as exc:
            passed = False
            print(
                json.dumps({"test": f"{package}.{name}", "error": str(exc).split("Stack")[0][:200]}),
                flush=True,
            )
        print(json.dumps({"test": f"{package}.{name}", "pass": passed}), flush=True)
    decisions = []
    for request in corpus():
        engine.set_input_json(json.dumps(request))
        decisions.append(engine.eval_rule(DECISION))
    print(json.dumps({"decisions": decisions}), flush=True)
    payload = json.dumps(TYPICAL)

    def decide() -> None:
        engine.set_input_json(payload)
        engine.eval_rule(DECISION)

    print(json.dumps({"speed": {"interpreted": _timed(decide, iterations)}}), flush=True)


def child_regopy(iterations: int) -> None:
    import regopy  # type: ignore[import-untyped]
    from regopy.rego_shared import (  # type: ignore[import-untyped]
        rego_bundle_query,
        rego_free_output,
        rego_output_string,
        rego_query,
    )

    def raw(interpreter: Any, query: str) -> Any:
        text = rego_output_string(rego_query(interpreter._impl, query))
        if text == "undefined":
            return None
        return json.loads(text)["expressions"][0]  # raises on regopy's invalid JSON (unescaped quotes)

    # Decisions and speed first, on the production modules only: the tests crash it.
    interpreter = regopy.Interpreter()
    for name, text in _modules(include_tests=False):
        interpreter.add_module(name, text)
    interpreter.add_data_json((POLICIES / "data.json").read_text())
    decisions: list[Any] = []
    for request in corpus():
        interpreter.set_input(regopy.Input(request))
        try:
            decisions.append(raw(interpreter, DECISION))
        except Exception as exc:
            decisions.append({"error": str(exc)[:200]})
    print(json.dumps({"decisions": decisions}), flush=True)

    # Timed through the C API: regopy's own Output parser chokes on our decisions' strings.
    def decide() -> None:
        interpreter.set_input(regopy.Input(TYPICAL))
        output = rego_query(interpreter._impl, DECISION)
        rego_output_string(output)
        rego_free_output(output)

    bundle = interpreter.build(DECISION, ["bastion/authz/decision"])
    runner = regopy.Interpreter()

    def decide_bundle() -> None:
        runner.set_input(regopy.Input(TYPICAL))
        output = rego_bundle_query(runner._impl, bundle._impl)
        rego_output_string(output)
        rego_free_output(output)

    speed = {"interpreted": _timed(decide, max(iterations // 10, 50))}
    speed["bundle"] = _timed(decide_bundle, max(iterations // 4, 50))
    print(json.dumps({"speed": speed}), flush=True)
    tester = regopy.Interpreter()
    for name, text in _modules(include_tests=True):
        tester.add_module(name, text)
    tester.add_data_json((POLICIES / "data.json").read_text())
    tester.set_input(regopy.Input({}))
    for package, name in _tests():
        print(json.dumps({"test": f"{package}.{name}", "started": True}), flush=True)
        try:
            passed = raw(tester, f"data.{package}.{name}") is True
        except Exception as exc:
            passed = False
            print(json.dumps({"test": f"{package}.{name}", "error": str(exc)[:200]}), flush=True)
        print(json.dumps({"test": f"{package}.{name}", "pass": passed}), flush=True)


def run_candidate(name: str, iterations: int) -> dict[str, Any]:
    process = subprocess.run(
        [sys.executable, __file__, "--child", name, "--iterations", str(iterations)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report: dict[str, Any] = {"returncode": process.returncode, "passed": 0, "failed": [], "errors": []}
    tests = _tests()
    started: str | None = None
    for line in process.stdout.splitlines():
        event = json.loads(line)
        if "started" in event:
            started = event["test"]
        elif "pass" in event:
            started = None
            if event["pass"]:
                report["passed"] += 1
            else:
                report["failed"].append(event["test"])
        elif "error" in event:
            report["errors"].append(f"{event['test']}: {event['error']}")
        else:
            report.update(event)
    report["tests"] = len(tests)
    if process.returncode < 0:
        report["crashed"] = f"signal {-process.returncode} while running {started or 'setup'}"
    elif process.returncode:
        report["crashed"] = process.stderr.strip().splitlines()[-1] if process.stderr.strip() else "failed"
    return report


def compare(reference: list[Any], other: list[Any]) -> int:
    return sum(1 for a, b in zip(reference, other, strict=False) if a == b)


# -- part 2: Bastion's engine as the gateway calls it ----------------------------


def bastion(iterations: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from gateway.policy import (
        CachedPolicyEngine,
        Context,
        EmbeddedRegoEngine,
        PolicyInput,
        Principal,
        Resource,
        filter_tools,
    )
    from gateway.policy.cache import cache_key

    engine = EmbeddedRegoEngine(reload_interval=None, strict=True)
    cached = CachedPolicyEngine(engine, ttl=3600, max_entries=100_000)
    principal = Principal("alice", "acme", ("analyst",))
    context = Context.now("127.0.0.1")

    def request(n: int | None = None) -> PolicyInput:
        arguments: dict[str, Any] = {"sql": "select 1", "source": "sales"}
        if n is not None:
            arguments["n"] = n  # a new argument value: a new cache key
        return PolicyInput(
            principal, "tools/call", Resource("analytics", "query", arguments=arguments), context
        )

    loop = asyncio.new_event_loop()
    results: dict[str, Any] = {}
    counter = iter(range(10**9))
    results["uncached decide"] = _timed(lambda: loop.run_until_complete(engine.decide(request())), iterations)
    results["cache miss (cache + engine)"] = _timed(
        lambda: loop.run_until_complete(cached.decide(request(next(counter)))), iterations
    )
    warm = request()
    loop.run_until_complete(cached.decide(warm))
    results["cached decide (same input object)"] = _timed(
        lambda: loop.run_until_complete(cached.decide(warm)), iterations
    )
    results["cached decide (input built per call)"] = _timed(
        lambda: loop.run_until_complete(cached.decide(request())), iterations
    )
    results["cache key only (build input + key)"] = _timed(lambda: cache_key(request()), iterations)
    catalog = [
        (upstream, f"tool_{n}") for upstream in ("analytics", "retrieval", "forecast") for n in range(20)
    ]

    def describe(entry: tuple[str, str]) -> Resource:
        return Resource(upstream=entry[0], tool=entry[1])

    fresh = CachedPolicyEngine(engine, ttl=0)
    results["tools/list of 60, uncached"] = _timed(
        lambda: loop.run_until_complete(filter_tools(fresh, principal, context, catalog, describe)),
        max(iterations // 20, 20),
    )
    results["tools/list of 60, cached"] = _timed(
        lambda: loop.run_until_complete(filter_tools(cached, principal, context, catalog, describe)),
        max(iterations // 20, 20),
    )
    loop.close()
    return results


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for name in ("gordon-to-regorus", "regopy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=3000, help="timed calls per measurement")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--skip-candidates", action="store_true", help="only measure Bastion's engine")
    parser.add_argument("--child", choices=["regorus", "regopy"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        {"regorus": child_regorus, "regopy": child_regopy}[args.child](args.iterations)
        return
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "versions": versions(),
    }
    if not args.skip_candidates:
        candidates = {name: run_candidate(name, args.iterations) for name in ("regorus", "regopy")}
        reference = candidates["regorus"].get("decisions", [])
        for result in candidates.values():
            result["agreement"] = f"{compare(reference, result.get('decisions', []))}/{len(reference)}"
            result.pop("decisions", None)
        report["candidates"] = candidates
    report["bastion"] = bastion(args.iterations)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"machine: {report['machine']}; packages: {report['versions']}")
    for name, result in report.get("candidates", {}).items():
        print(f"\n## {name}")
        print(f"policy tests passed: {result['passed']}/{result['tests']}")
        if result.get("crashed"):
            print(f"crashed: {result['crashed']}")
        for failed in result["failed"][:10]:
            print(f"  failed: {failed}")
        for error in result["errors"][:5]:
            print(f"  error: {error}")
        print(f"decisions equal to regorus': {result['agreement']}")
        for mode, numbers in result.get("speed", {}).items():
            print(f"typical decision, {mode}: p50 {numbers['p50_us']} us, p99 {numbers['p99_us']} us")
    print("\n## Bastion's engine (gordon-to-regorus) as the gateway calls it")
    print("| measurement | p50 (us) | p99 (us) | n |\n|---|---:|---:|---:|")
    for label, numbers in report["bastion"].items():
        print(f"| {label} | {numbers['p50_us']} | {numbers['p99_us']} | {numbers['n']} |")


if __name__ == "__main__":
    main()
