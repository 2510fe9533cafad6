"""Filtering listings by policy: what a `tools/list` shows a caller.

Each entry becomes one `tools/list` decision (no arguments: argument rules apply when the
tool is called). Entries are decided together through `decide_many`, so the cache answers
the ones it knows and the engine evaluates the rest in one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from gateway.policy.engine import PolicyEngine
from gateway.policy.model import Action, Context, PolicyInput, Principal, Resource

__all__ = ["filter_allowed", "filter_tools"]

T = TypeVar("T")


async def filter_allowed(
    engine: PolicyEngine,
    principal: Principal,
    context: Context,
    action: Action,
    entries: Sequence[T],
    describe: Callable[[T], Resource],
) -> list[T]:
    """The entries `principal` may reach with `action`, in their order."""
    if not entries:
        return []
    inputs = [PolicyInput(principal, action, describe(entry), context) for entry in entries]
    decisions = await engine.decide_many(inputs)
    return [entry for entry, decision in zip(entries, decisions, strict=True) if decision.allow]


async def filter_tools(
    engine: PolicyEngine,
    principal: Principal,
    context: Context,
    tools: Sequence[T],
    describe: Callable[[T], Resource],
) -> list[T]:
    """The tools `principal` may see; `describe` gives each one's upstream, name and annotations."""
    return await filter_allowed(engine, principal, context, "tools/list", tools, describe)
