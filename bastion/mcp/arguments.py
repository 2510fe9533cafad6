"""Argument types whose JSON Schema is exact while the tool checks the value itself.

Some tool arguments stay `list[Any]` in Python so that the tool's own checks word the
error (`values[2]` is 'x' (str), not a number ...) instead of a generic validation
message. The schema that clients see must still say what each list holds: an LLM
writes its arguments from it, MCP clients lint it, and the gateway checks every call
against it before anything runs upstream. `WithJsonSchema` gives each such type the
schema pydantic would write for its precise form, without changing how it validates.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import WithJsonSchema

__all__ = ["JSON_SCALAR", "SeriesTimestamps", "SeriesValues", "SqlParams", "TableRows"]

JSON_SCALAR: dict[str, Any] = {
    "anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]
}
"""One JSON value that is not a container."""

SeriesValues = Annotated[
    list[Any],
    WithJsonSchema({"type": "array", "items": {"anyOf": [{"type": "number"}, {"type": "null"}]}}),
]
"""A series: numbers, null where a value is missing."""

SeriesTimestamps = Annotated[
    list[Any],
    WithJsonSchema({"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "number"}]}}),
]
"""One timestamp per value: ISO 8601 text or Unix epoch seconds."""

TableRows = Annotated[
    list[Any],
    WithJsonSchema(
        {
            "type": "array",
            "items": {
                "anyOf": [
                    {"type": "object", "additionalProperties": True},
                    {"type": "array", "items": JSON_SCALAR},
                ]
            },
        }
    ),
]
"""Table rows: objects keyed by column, or arrays of values in column order."""

SqlParams = Annotated[
    list[Any],
    WithJsonSchema(
        {
            "type": "array",
            "items": {"anyOf": [*JSON_SCALAR["anyOf"], {"type": "array", "items": JSON_SCALAR}]},
        }
    ),
]
"""Values bound to $1, $2...: scalars, or arrays of scalars for `= ANY($1)`."""
