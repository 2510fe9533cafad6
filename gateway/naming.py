"""Exposed names: `<upstream>_<name>`, valid under LLM tool-name rules.

Tool and prompt names are exposed as `<upstream>_<name>`, restricted to
`^[a-zA-Z0-9_-]{1,64}$`. The gateway never splits an exposed name on `_` to find
its upstream (both parts may contain underscores): `NameTable` maps each exposed
name back to its upstream and original name. Characters outside the alphabet become
`_`; a name that is still too long, or that collides with another, is shortened and
given a stable hash suffix, so the same upstream and tool always get the same name.

Prefixed names of two upstreams can only collide when one upstream's name extends the
other's (`my` + `server_get_data` and `my_server` + `get_data`). The table knows every
upstream's name from the start and always gives the plain form to the longer-named one,
so which tool keeps it never depends on which upstream connected first.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["MAX_NAME", "NAME_PATTERN", "NameTable", "Target", "expose_name"]

MAX_NAME = 64
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_INVALID = re.compile(r"[^a-zA-Z0-9_-]")
_SUFFIX_LEN = 8


@dataclass(frozen=True, slots=True)
class Target:
    """Where an exposed name leads."""

    upstream: str
    name: str


def _digest(upstream: str, name: str) -> str:
    return hashlib.sha256(f"{upstream}\x00{name}".encode()).hexdigest()[:_SUFFIX_LEN]


def expose_name(upstream: str, name: str, *, prefix: bool = True) -> str:
    """The stable exposed name of `name` from `upstream` (collisions aside)."""
    raw = f"{upstream}_{name}" if prefix else name
    clean = _INVALID.sub("_", raw)
    if clean == raw and 0 < len(clean) <= MAX_NAME:
        return clean
    # Changed or too long: a hash of the original keeps it stable and unique.
    head = clean[: MAX_NAME - _SUFFIX_LEN - 1] or "t"
    return f"{head}_{_digest(upstream, name)}"


class NameTable:
    """A two-way table between exposed names and (upstream, original name)."""

    def __init__(self, *, prefix: bool = True, upstreams: Iterable[str] = ()) -> None:
        """`upstreams`: every upstream's name, so a plain name another upstream's tools could
        also produce is hashed from the start (see the module's docstring)."""
        self.prefix = prefix
        self._upstreams = frozenset(upstreams)
        self._forward: dict[str, Target] = {}
        self._reverse: dict[Target, str] = {}

    def _shadowed(self, upstream: str, exposed: str) -> bool:
        """Whether `exposed` (from `upstream`) also reads as a name of a longer-named upstream."""
        return self.prefix and any(
            len(other) > len(upstream) and exposed.startswith(other + "_") for other in self._upstreams
        )

    def add(self, upstream: str, name: str) -> str:
        target = Target(upstream, name)
        existing = self._reverse.get(target)
        if existing is not None:
            return existing
        exposed = expose_name(upstream, name, prefix=self.prefix)
        if exposed in self._forward or self._shadowed(upstream, exposed):
            # A name another target has, or could get: this one gets the hashed form.
            head = exposed[: MAX_NAME - _SUFFIX_LEN - 1]
            exposed = f"{head}_{_digest(upstream, name)}"
        self._forward[exposed] = target
        self._reverse[target] = exposed
        return exposed

    def resolve(self, exposed: str) -> Target | None:
        return self._forward.get(exposed)

    def exposed(self, upstream: str, name: str) -> str | None:
        return self._reverse.get(Target(upstream, name))

    def __len__(self) -> int:
        return len(self._forward)

    def __contains__(self, exposed: object) -> bool:
        return exposed in self._forward
