"""`freeze()`: keep what a long-running process's start created out of the collector's walks.

The gateway and each MCP server hold the objects their start created for their whole
life: modules, settings, policy, the SDK's types, 100,000 to 145,000 of them. Every full
collection of CPython's cyclic collector walks all of them: 52-75 ms of a built-in
server's event loop, and 81.6 ms of the gateway's under sixteen clients
(docs/benchmarks/gateway-runs.md, run AG). Frozen, they are never walked again. The
garbage of the start is collected first, so none of it is kept for good.

Only for a process that runs nothing else: reference counting still frees a frozen object
that is dropped later, but a dropped cycle of frozen objects is never collected (once per
process at most: a policy or catalog the start loaded and a reload replaced).
"""

from __future__ import annotations

import gc

__all__ = ["freeze"]


def freeze() -> None:
    """Collect the start's garbage, then move every object alive to the permanent generation."""
    gc.collect()
    gc.freeze()
