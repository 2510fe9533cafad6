"""Tool results built once: structured content plus its compact JSON as the text block.

The SDK's default for a dict result renders the text block with `indent=2` and then
validates and dumps the structured copy again. For tools that return many rows that
doubles the serialisation work and triples the text an LLM reads; a tool annotated
`Annotated[CallToolResult, ResultType]` returns `structured(data)` instead and keeps its
published output schema (the SDK still validates the structured content against it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from mcp.types import CallToolResult, TextContent

__all__ = ["structured"]


def structured(data: Mapping[str, Any]) -> CallToolResult:
    """`data` as a tool result: structured content and the same JSON, compact, as text."""
    text = orjson.dumps(data).decode()
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=dict(data))
