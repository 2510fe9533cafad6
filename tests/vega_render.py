"""Render a Vega-Lite spec the way a chat client would, offline, and count what it draws.

vl-convert bundles Vega and Vega-Lite in its own JavaScript runtime, so a spec a tool
returns is compiled and laid out by the real libraries here, with no browser or network.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import vl_convert

VEGA_LITE = "5.21"  # the specs name the v5 schema


def drawn_marks(spec: dict[str, Any]) -> Counter[str]:
    """Items drawn per mark type (a line counts its points); raises if the spec does not compile."""
    scene = vl_convert.vegalite_to_scenegraph(spec, vl_version=VEGA_LITE)
    counts: Counter[str] = Counter()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("role") == "mark" and "marktype" in node:
                counts[node["marktype"]] += len(node.get("items") or [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(scene["scenegraph"])
    return counts
