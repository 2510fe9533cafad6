"""The embedded Rego engine: Bastion's default, evaluating in-process with regorus.

Evaluation runs on the event loop: a decision takes tens of microseconds, less than a hop to
a worker thread, and the regorus engine is not shared across threads. Loading and parsing
files, which can take milliseconds, runs in a worker thread.

The engine watches its folder (polling file times, so no extra dependency) and reloads on
change. A folder that fails to load or whose policy fails a probe decision leaves the last
good policy in force; the error shows in `status()`, the logs and
`bastion_policy_reload_errors_total`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import orjson

from gateway.policy import metrics
from gateway.policy._regorus import RegorusEngine, hold
from gateway.policy.bundle import (
    Fingerprint,
    PolicyBundle,
    clean_error,
    default_policy_dir,
    defined_roles,
    fingerprint,
)
from gateway.policy.engine import DECISION_PATH, UNDEFINED, PolicyEngine
from gateway.policy.errors import PolicyError, PolicyEvaluationError, PolicyLoadError
from gateway.policy.model import Context, Decision, PolicyInput, PolicyStatus, Principal, Resource
from gateway.policy.result import decision_from_result

__all__ = ["EmbeddedRegoEngine"]

logger = logging.getLogger(__name__)


def _probes(data: Mapping[str, Any]) -> list[PolicyInput]:
    """Requests every valid policy must decide: one with no role and one holding every role
    that data defines, so a policy or data edit that breaks decisions is refused at load."""
    roles = defined_roles(data)
    context = Context(time="2026-01-01T00:00:00Z", client_address="127.0.0.1")
    resource = Resource(upstream="system", tool="version", arguments={})
    return [
        PolicyInput(Principal("bastion:probe", "bastion", roles_held), "tools/call", resource, context)
        for roles_held in ((), roles)
    ]


def _rule(path: str) -> str:
    """`bastion/authz/decision` or `data.bastion.authz.decision` -> `data.bastion.authz.decision`."""
    dotted = path.strip("/").replace("/", ".")
    return dotted if dotted.startswith("data.") or dotted == "data" else f"data.{dotted}"


class EmbeddedRegoEngine(PolicyEngine):
    """Rego policy from a folder, evaluated in-process, reloaded when the folder changes."""

    name = "embedded"

    def __init__(
        self,
        folder: Path | None = None,
        *,
        decision_path: str = DECISION_PATH,
        reload_interval: float | None = 1.0,
        include_tests: bool = False,
        extra_data: Mapping[str, Any] | None = None,
        strict: bool = False,
    ) -> None:
        """Load `folder` (default: the packaged `policies/`) now.

        A folder that fails to load raises `PolicyLoadError` when `strict`; otherwise every
        decision is denied with the error until a valid policy appears. `reload_interval=None`
        disables watching; `include_tests` also loads `*_test.rego` (for running tests).
        """
        self.folder = (folder or default_policy_dir()).expanduser().resolve()
        self.decision_path = decision_path
        self._rule = _rule(decision_path)
        self._interval = reload_interval
        self._include_tests = include_tests
        self._extra_data = dict(extra_data) if extra_data else None
        self._engine: RegorusEngine | None = None
        self._data: Mapping[str, Any] | None = None
        self._sources: tuple[str, ...] = ()
        self._loaded_at: datetime | None = None
        self._seen: Fingerprint | None = None
        self._error: str | None = None
        self._revision = 0
        self._watcher: asyncio.Task[None] | None = None
        self._seen = fingerprint(self.folder, include_tests)
        try:
            self._install(self._compile(self._reader()()))
        except PolicyError as exc:
            if strict:
                raise PolicyLoadError(exc.message) from exc
            self._fail(exc.message)

    # -- loading ---------------------------------------------------------------

    def _reader(self) -> functools.partial[PolicyBundle]:
        """The blocking read of the folder's files, for a worker thread. It must not hold `self`:
        a worker that dropped the last reference would drop the regorus engine on its own
        thread, which the engine refuses."""
        return functools.partial(
            PolicyBundle.load, self.folder, include_tests=self._include_tests, extra_data=self._extra_data
        )

    def _compile(self, bundle: PolicyBundle) -> tuple[PolicyBundle, RegorusEngine]:
        """Parse the modules and probe the decision. regorus engines may not cross threads,
        so this runs on the thread that evaluates (the event loop's)."""
        self._seen = bundle.fingerprint
        engine = bundle.compile()
        for probe in _probes(bundle.data):
            value = self._evaluate(engine, probe.to_json())
            decision_from_result(value, f"the policy in {self.folder} (probe at {self.decision_path})")
        return bundle, engine

    def _install(self, loaded: tuple[PolicyBundle, RegorusEngine]) -> None:
        bundle, engine = loaded
        hold(self, engine)  # so a collector on another thread never drops it
        self._engine = engine
        self._data = bundle.data
        self._sources = bundle.sources
        self._loaded_at = datetime.now(UTC)
        self._error = None
        self._revision += 1
        metrics.POLICY_OK.set(1)
        metrics.POLICY_RELOADS.inc()
        logger.info(
            "policy loaded from %s (%d modules, revision %d)",
            self.folder,
            len(bundle.modules),
            self._revision,
        )

    def _fail(self, message: str) -> None:
        self._error = message
        metrics.POLICY_OK.set(0)
        metrics.POLICY_RELOAD_ERRORS.inc()
        kept = "keeping the last good policy" if self._engine is not None else "denying every request"
        logger.error("policy in %s is invalid, %s: %s", self.folder, kept, message)

    async def reload(self) -> bool:
        """Reload the folder now; True when a new policy is in force."""
        try:
            loaded = self._compile(await anyio.to_thread.run_sync(self._reader()))
        except PolicyError as exc:
            self._fail(exc.message)
            return False
        self._install(loaded)
        return True

    async def check(self) -> bool:
        """Reload if any file changed since the last load attempt; True when one did."""
        current = await anyio.to_thread.run_sync(fingerprint, self.folder, self._include_tests)
        if current == self._seen:
            return False
        self._seen = current
        await self.reload()
        return True

    async def _watch(self, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            try:
                await self.check()
            except Exception:  # never let the watcher die: the next poll tries again
                logger.exception("watching %s failed", self.folder)

    async def start(self) -> None:
        if self._interval and self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch(self._interval), name=f"policy-watch:{self.folder}"
            )

    async def close(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    # -- evaluating ------------------------------------------------------------

    def _evaluate(self, engine: RegorusEngine, payload: bytes) -> Any:
        try:
            engine.set_input_json(payload.decode())
            return engine.eval_rule(self._rule)
        except Exception as exc:
            raise PolicyEvaluationError(clean_error(exc)) from exc

    def decide_now(self, input: PolicyInput) -> Decision:
        """Decide synchronously (the engine's own work; `decide` adds nothing but metrics)."""
        started = time.perf_counter()
        engine = self._engine
        try:
            if engine is None:
                raise PolicyEvaluationError(f"no valid policy is loaded ({self._error})")
            decision = decision_from_result(self._evaluate(engine, input.to_json()))
        except PolicyError as exc:
            decision = Decision.error(exc.message)
        except (TypeError, ValueError) as exc:  # orjson: the input is not JSON
            decision = Decision.error(f"the request cannot be given to policy ({exc})")
        metrics.observe_evaluation(self.name, decision, time.perf_counter() - started)
        return decision

    async def decide(self, input: PolicyInput) -> Decision:
        return self.decide_now(input)

    async def decide_many(self, inputs: Sequence[PolicyInput]) -> list[Decision]:
        return [self.decide_now(item) for item in inputs]

    async def query(self, path: str, input: Mapping[str, Any] | None = None) -> Any:
        """The value at `data.<path>` for `input`, or `UNDEFINED` (what an OPA server answers)."""
        engine = self._engine
        if engine is None:
            raise PolicyEvaluationError(f"no valid policy is loaded ({self._error})")
        try:
            engine.set_input_json(orjson.dumps(input if input is not None else {}).decode())
            answer = orjson.loads(engine.eval_query_as_json(_rule(path)))
        except orjson.JSONEncodeError as exc:
            raise PolicyEvaluationError(f"the input is not JSON ({exc})") from exc
        except Exception as exc:
            raise PolicyEvaluationError(clean_error(exc)) from exc
        results = answer.get("result") or []
        return results[0]["expressions"][0]["value"] if results else UNDEFINED

    # -- health ----------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._revision

    def loaded_data(self) -> Mapping[str, Any] | None:
        return self._data

    def status(self) -> PolicyStatus:
        return PolicyStatus(
            ok=self._engine is not None and self._error is None,
            engine=self.name,
            error=self._error,
            loaded_at=self._loaded_at,
            sources=self._sources,
            revision=self._revision,
        )
