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

# thread -> id(owner) -> (the owner, weakly; its engine)
_held: dict[int, dict[int, tuple[weakref.ref[object], Any]]] = {}
_held_lock = threading.Lock()


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
    thread = threading.get_ident()
    released: list[tuple[weakref.ref[object], Any]] = []
    with _held_lock:
        held = _held.setdefault(thread, {})
        for key, (ref, _) in list(held.items()):
            if key == id(owner) or ref() is None:
                released.append(held.pop(key))
        held[id(owner)] = (weakref.ref(owner), engine)
    released.clear()  # the last references, dropped on the thread that made the engines


def regorus_version() -> str:
    from importlib.metadata import version

    return version("gordon-to-regorus")
