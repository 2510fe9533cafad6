"""The one wording for tool arguments a tool does not declare, shared by the gateway (which
checks every call against the tool's closed `inputSchema`) and the built-in servers (which
refuse the same call made to them directly), so a caller reads the same answer from both."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["unknown_arguments_message"]


def unknown_arguments_message(unknown: Sequence[str], known: Sequence[str]) -> str:
    """`'top_k' is not an argument of this tool; it takes query, k, ...`."""
    names = ", ".join(repr(name) for name in unknown)
    verb = "is not an argument" if len(unknown) == 1 else "are not arguments"
    takes = f"it takes {', '.join(known)}" if known else "it takes none"
    return f"{names} {verb} of this tool; {takes}"
