"""The anomaly server through MCP: in process (every tool, errors, run records) and as `bastion serve`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import numpy as np
import pytest
from mcp import Client, StdioServerParameters

from bastion.db.database import Database
from bastion.mcp import ServerRuntime, build_server
from bastion.settings import Settings
from servers.anomaly.server import spec

REPO = Path(__file__).resolve().parents[3]
SERIES = [float(v) for v in 50 + np.random.default_rng(0).normal(size=200)]
SERIES[150] += 20


@pytest.fixture
async def runtime(settings: Settings, database: Database) -> AsyncIterator[ServerRuntime]:
    async with ServerRuntime.open(spec, settings, transport="stdio", database=database) as opened:
        yield opened


async def test_every_tool_answers_through_mcp_and_runs_are_recorded(runtime: ServerRuntime) -> None:
    rows = [{"a": float(i % 7), "b": float(i % 5)} for i in range(60)] + [{"a": 90.0, "b": 1.0}]
    async with Client(build_server(spec, runtime)) as client:
        table_flagged = await client.call_tool("score_table", {"rows": rows, "detail": "anomalous"})
        series = await client.call_tool("score_series", {"values": SERIES})
        flagged = await client.call_tool("score_series", {"values": SERIES, "points": "anomalous"})
        table = await client.call_tool("score_table", {"rows": rows})
        answer = await client.call_tool(
            "score_answer",
            {"answer": "Sales rose 5% [s].", "sources": [{"id": "s", "text": "Sales rose 5% in May."}]},
        )
    assert series.structured_content is not None
    assert 150 in [a["start"] for a in series.structured_content["anomalies"]]
    assert flagged.structured_content is not None
    only = flagged.structured_content["points"]
    assert only == [p for p in series.structured_content["points"] if p["is_anomaly"]]
    assert 150 in [p["ds"] for p in only] and len(only) < len(SERIES)
    assert table.structured_content is not None
    assert table.structured_content["labels"][-1] is True
    assert table_flagged.structured_content is not None
    assert table_flagged.structured_content["flagged"][0]["row"] == len(rows) - 1
    assert answer.structured_content is not None
    assert answer.structured_content["risk"] < 0.2
    async with runtime.database.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT tool, items, outcome, error FROM anomaly.runs ORDER BY id DESC LIMIT 3"
        )
        recorded = await cur.fetchall()
    assert [r[0] for r in recorded] == ["score_answer", "score_table", "score_series"]
    assert recorded[2][1] == 200 and recorded[2][2].endswith("anomalies") and recorded[2][3] is None


async def test_bad_input_is_a_tool_error_with_the_message_and_is_recorded(runtime: ServerRuntime) -> None:
    async with Client(build_server(spec, runtime)) as client:
        bad = await client.call_tool("score_table", {"rows": [{"a": 1}, {"a": "x"}], "features": ["a"]})
        good = await client.call_tool("score_series", {"values": SERIES[:50]})
    assert bad.is_error
    assert "column 'a' is not numeric: rows[1] has 'x'" in bad.content[0].text  # type: ignore[union-attr]
    assert not good.is_error
    async with runtime.database.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT error FROM anomaly.runs WHERE tool = 'score_table' ORDER BY id DESC LIMIT 1"
        )
        row = await cur.fetchone()
    assert row is not None and "not numeric" in row[0]


def test_loading_the_spec_imports_no_numeric_stack() -> None:
    code = (
        "import sys, servers.anomaly.server; print(sorted({'numpy', 'pandas', 'sklearn'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


async def test_bastion_serve_anomaly_over_stdio_scores_a_series(shared_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_") and k != "DATABASE_URL"}
    env["BASTION_HOME"] = str(shared_home)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bastion.cli", "serve", "anomaly", "--transport", "stdio"],
        env=env,
        cwd=str(REPO),
    )
    with anyio.fail_after(120):
        async with Client(params) as client:
            tools = await client.list_tools()
            result = await client.call_tool("score_series", {"values": SERIES})
            bad = await client.call_tool("score_series", {"values": [1.0, 2.0]})
    assert {t.name for t in tools.tools} == {"score_series", "score_table", "score_answer"}
    assert result.structured_content is not None
    assert len(result.structured_content["points"]) == 200
    assert bad.is_error and "at least 10 are needed" in bad.content[0].text  # type: ignore[union-attr]
