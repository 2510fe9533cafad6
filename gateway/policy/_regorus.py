"""The slice of regorus' `Engine` Bastion uses, typed (the native module ships no stubs),
and `hold`, which keeps an engine on the thread that made it.

A regorus engine may only be dropped on the thread that made it; dropped on another it
raises (unraisably, so pytest fails whatever test is running) and leaks. Reference counting
drops it where its owner lets go, but an owner caught in a reference cycle is freed by the
cyclic collector, which runs on whichever thread crosses its threshold: a worker reading a
CSV, say. So each installed engine is also held here, under the thread that made it, and
let go by that thread once its owner has replaced it or is gone.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Protocol, cast

import regorus

__all__ = ["RegorusEngine", "hold", "new_engine", "regorus_version"]

# Per thread (thread-local, so a thread that ends drops its own): id(owner) -> (the owner,
# weakly; its engine).
_local = threading.local()


class RegorusEngine(Protocol):
    def add_policy(self, path: str, rego: str) -> str: ...
    def add_data(self, data: Any) -> None: ...
    def set_input_json(self, input: str) -> None: ...
    def eval_rule(self, rule: str) -> Any: ...
    def eval_query_as_json(self, query: str) -> str: ...


def new_engine() -> RegorusEngine:
    return cast(RegorusEngine, regorus.Engine())  # pyright: ignore[reportAttributeAccessIssue]


def hold(owner: object, engine: RegorusEngine) -> None:
    """Hold `owner`'s current `engine` (made on this thread), and let go, here, of the
    engines this thread made for owners that replaced them or are gone."""
    held: dict[int, tuple[weakref.ref[object], Any]] = _local.__dict__.setdefault("held", {})
    for key, (ref, _) in list(held.items()):
        if key == id(owner) or ref() is None:
            del held[key]  # the last reference, dropped on the thread that made the engine
    held[id(owner)] = (weakref.ref(owner), engine)


def regorus_version() -> str:
    from importlib.metadata import version

    return version("gordon-to-regorus")
