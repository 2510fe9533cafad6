"""The slice of regorus' `Engine` Bastion uses, typed (the native module ships no stubs)."""

from __future__ import annotations

from typing import Any, Protocol, cast

import regorus

__all__ = ["RegorusEngine", "new_engine", "regorus_version"]


class RegorusEngine(Protocol):
    def add_policy(self, path: str, rego: str) -> str: ...
    def add_data(self, data: Any) -> None: ...
    def set_input_json(self, input: str) -> None: ...
    def eval_rule(self, rule: str) -> Any: ...
    def eval_query_as_json(self, query: str) -> str: ...


def new_engine() -> RegorusEngine:
    return cast(RegorusEngine, regorus.Engine())  # pyright: ignore[reportAttributeAccessIssue]


def regorus_version() -> str:
    from importlib.metadata import version

    return version("gordon-to-regorus")
