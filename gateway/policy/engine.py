"""The `PolicyEngine` contract every implementation keeps.

An engine answers `decide` with a `Decision` and never raises for a policy problem: an
engine error, an unreachable or confused OPA, a malformed result all become a denial whose
reason starts with "policy engine error:" (fail closed). `status` reports health for
`/readyz`; `revision` changes whenever the policy in force changes, so caches can drop
decisions made under an older policy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Protocol, Self

from gateway.policy.model import Decision, PolicyInput, PolicyStatus

__all__ = ["DECISION_PATH", "UNDEFINED", "PolicyEngine", "RegoEvaluator"]

# Where Bastion's policy publishes its decision, as an OPA data API path.
DECISION_PATH: Final = "bastion/authz/decision"


class _Undefined:
    """Rego's "undefined": a query with no result (distinct from a result of null)."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Final = _Undefined()


class RegoEvaluator(Protocol):
    """Anything that can evaluate a data path with an input: what `bastion policy test` runs on."""

    async def query(self, path: str, input: Mapping[str, Any] | None = None) -> Any:
        """The value at `data.<path>` (slash or dot separated), or `UNDEFINED`."""
        ...


class PolicyEngine(ABC):
    """Decides requests with policy. Use as `async with engine:` or call `start` and `close`."""

    name: str = "policy"

    @abstractmethod
    async def decide(self, input: PolicyInput) -> Decision:
        """Decide one request; never raises for policy problems (fail closed)."""

    async def decide_many(self, inputs: Sequence[PolicyInput]) -> list[Decision]:
        """Decide several requests (a `tools/list`); engines may do this faster than one by one."""
        return [await self.decide(item) for item in inputs]

    @abstractmethod
    def status(self) -> PolicyStatus:
        """Health of the engine and the policy in force."""

    @property
    def revision(self) -> int:
        """Changes whenever the policy in force changes."""
        return 0

    def loaded_data(self) -> Mapping[str, Any] | None:
        """The data of the policy in force, when this process holds it (None: it lives
        elsewhere, as with an OPA server, or no policy has loaded)."""
        return None

    async def start(self) -> None:  # noqa: B027 - optional hook, most engines need nothing
        """Begin background work (watching files, probing OPA)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop background work and release clients."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
