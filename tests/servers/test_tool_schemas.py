"""Every built-in tool's `inputSchema` says what each argument holds.

Clients write arguments from these schemas (an LLM cannot see the tool's own checks),
MCP clients lint them (the Inspector warns about a schema with no validation keyword,
"the object-literal spelling of a bare `true`"), and the gateway checks every call
against them before anything runs upstream.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.components import BUILTIN_SERVERS, load_server
from bastion.mcp import build_server
from gateway.argument_schema import ArgumentSchemas
from tests.offline_runtime import offline_runtime

# A schema that holds any of these constrains its value (or combines schemas that do).
_KEYWORDS = frozenset(
    {
        "type",
        "enum",
        "const",
        "$ref",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "properties",
        "items",
        "prefixItems",
        "additionalProperties",
        "patternProperties",
    }
)


async def _input_schemas(name: str, home: Path) -> dict[str, dict[str, Any]]:
    spec = load_server(name)
    runtime = offline_runtime(spec, home)  # listing tools does no I/O
    tools = await build_server(spec, runtime).list_tools()
    return {tool.name: tool.input_schema for tool in tools}


def _unconstrained(schema: Any, path: str) -> Iterator[str]:
    """Paths of the argument schemas below `schema` that accept any value by accident."""
    if not isinstance(schema, dict):
        return
    for key in ("properties", "$defs", "patternProperties"):
        for child, sub in (schema.get(key) or {}).items():
            if isinstance(sub, dict) and not _KEYWORDS & sub.keys():
                yield f"{path}.{key}.{child}"
            yield from _unconstrained(sub, f"{path}.{key}.{child}")
    for key in ("items", "additionalProperties", "not"):
        sub = schema.get(key)
        if isinstance(sub, dict):
            if not _KEYWORDS & sub.keys():
                yield f"{path}.{key}"
            yield from _unconstrained(sub, f"{path}.{key}")
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for i, sub in enumerate(schema.get(key) or []):
            if isinstance(sub, dict) and not _KEYWORDS & sub.keys():
                yield f"{path}.{key}[{i}]"
            yield from _unconstrained(sub, f"{path}.{key}[{i}]")


@pytest.mark.parametrize("name", sorted(BUILTIN_SERVERS))
async def test_every_argument_schema_constrains_its_value(name: str, tmp_path: Path) -> None:
    schemas = await _input_schemas(name, tmp_path)
    assert schemas, f"{name} lists no tools"
    loose = [p for tool, schema in schemas.items() for p in _unconstrained(schema, f"{tool}.inputSchema")]
    assert loose == []


def test_the_unconstrained_check_finds_a_bare_item_schema() -> None:
    schema = {"type": "object", "properties": {"values": {"type": "array", "items": {}}}}
    assert list(_unconstrained(schema, "t")) == ["t.properties.values.items"]


@pytest.mark.parametrize(
    ("server", "tool", "good", "bad", "named"),
    [
        (
            "forecast",
            "forecast",
            {"values": [1.5, None, 2], "horizon": 1},
            {"values": [1, "x"], "horizon": 1},
            "values[1]",
        ),
        (
            "forecast",
            "forecast",
            {"values": [1, 2], "timestamps": ["2024-01-01", "2024-01-02"], "horizon": 1},
            {"values": [1, 2], "timestamps": ["2024-01-01", None], "horizon": 1},
            "timestamps[1]",
        ),
        (
            "anomaly",
            "score_series",
            {"values": [1, None], "timestamps": [0, 3600]},
            {"values": [True]},
            "values[0]",
        ),
        (
            "anomaly",
            "score_table",
            {"rows": [{"a": 1, "b": "x"}, [1, 2.5, None]]},
            {"rows": [[{"nested": 1}]]},
            "rows[0][0]",
        ),
        (
            "analytics",
            "query",
            {"sql": "SELECT $1, $2, $3", "params": ["north", 1.5, [1, 2]]},
            {"sql": "SELECT $1", "params": [{"a": 1}]},
            "params[0]",
        ),
    ],
)
async def test_the_gateway_checks_calls_against_the_exact_schemas(
    server: str, tool: str, good: dict[str, Any], bad: dict[str, Any], named: str, tmp_path: Path
) -> None:
    schema = (await _input_schemas(server, tmp_path))[tool]
    checks = ArgumentSchemas()
    assert checks.problem(server, tool, schema, good) is None
    problem = checks.problem(server, tool, schema, bad)
    assert problem is not None and f"argument {named!r}" in problem
