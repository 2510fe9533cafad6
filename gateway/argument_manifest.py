"""Which tool arguments policy reads, so decisions on the rest can be cached.

Policy data declares the arguments its rules inspect (`data.bastion.tools.arguments`:
tool pattern -> argument -> grant kind). The gateway passes policy only those
arguments; a call's other arguments (an echo's text, a query's free prose) then do not
make every decision unique, and the decision cache answers repeated calls. Patterns
follow the policy's own form: `upstream/tool` exactly, or a prefix ending in `*`.

The manifest comes from the data of the policy in force (every `data.json` of the folder,
as the engine merged it), so it changes exactly when the policy does. With an OPA server
the data lives there: the gateway then passes every argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ArgumentManifest"]


class ArgumentManifest:
    """Maps `upstream/tool` to the argument names policy may read (None: all of them)."""

    def __init__(self, patterns: dict[str, frozenset[str]] | None) -> None:
        self.patterns = patterns
        self._memo: dict[tuple[str, str], frozenset[str] | None] = {}

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> ArgumentManifest:
        """The manifest `data` declares; None (data held elsewhere) or no declaration: every argument."""
        declared: Any = data
        for part in ("bastion", "tools", "arguments"):
            declared = declared.get(part) if isinstance(declared, Mapping) else None
        if not isinstance(declared, Mapping):
            return cls(None)
        return cls(
            {str(p): frozenset(map(str, spec)) for p, spec in declared.items() if isinstance(spec, Mapping)}
        )

    def relevant(self, upstream: str, tool: str) -> frozenset[str] | None:
        if self.patterns is None:
            return None
        key = (upstream, tool)
        if key not in self._memo:
            name = f"{upstream}/{tool}"
            names: set[str] = set()
            for pattern, arguments in self.patterns.items():
                if pattern == name or (pattern.endswith("*") and name.startswith(pattern[:-1])):
                    names |= arguments
            self._memo[key] = frozenset(names)
        return self._memo[key]

    def reduce(self, upstream: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        keep = self.relevant(upstream, tool)
        if keep is None:
            return arguments
        return {k: v for k, v in arguments.items() if k in keep}
