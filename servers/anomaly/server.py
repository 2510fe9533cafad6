"""The `anomaly` server: anomalies in time series and tables, and the risk of an answer.

Tools are thin: they run the synchronous scorers off the event loop, turn input
errors into tool errors with the scorer's message, and record each run in the
`anomaly` schema. numpy, pandas and scikit-learn are imported when a tool first runs,
so loading this spec (as `bastion.components` does) stays cheap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from bastion.errors import ConfigError
from bastion.mcp import ServerRuntime, ServerSpec
from bastion.mcp.arguments import SeriesTimestamps, SeriesValues, TableRows
from bastion.mcp.runs import record_run
from servers.anomaly.runs import MIGRATIONS, RunRecord

__all__ = ["spec"]

logger = logging.getLogger(__name__)

spec = ServerSpec(
    name="anomaly",
    description="Anomaly scores for time series and tables, and the risk of an agent's answer.",
    instructions=(
        "Call `score_series` for a time series (per-point scores, bands and anomaly episodes), "
        "`score_table` for rows of numeric columns (IsolationForest, LOF or robust z), and "
        "`score_answer` to check an answer against its cited sources (groundedness, PII, retrieval)."
    ),
    migrations=MIGRATIONS,
)

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def _count(items: object) -> int:
    return len(items) if isinstance(items, (list, str)) else 0  # pyright: ignore[reportUnknownArgumentType]


async def _run(
    ctx: Context[ServerRuntime, Any],
    tool: str,
    work: Callable[[], dict[str, Any]],
    items: int,
    outcome: Callable[[dict[str, Any]], str],
) -> dict[str, Any]:
    from bastion.timeseries import require_extra

    require_extra("anomaly")
    started = time.perf_counter()
    record = RunRecord(tool=tool, items=items, duration_ms=0.0)
    try:
        result = await anyio.to_thread.run_sync(work)
        record.outcome = outcome(result)
        return result
    except ConfigError as exc:
        record.error = exc.message
        raise ToolError(exc.message) from None
    finally:
        record.duration_ms = (time.perf_counter() - started) * 1000
        await record_run(ctx.request_context.lifespan_context.database, "anomaly", record)


@spec.tool(annotations=READ_ONLY)
async def score_series(
    values: Annotated[
        SeriesValues, Field(description="The series, oldest first: numbers, null for missing.")
    ],
    ctx: Context[ServerRuntime, Any],
    timestamps: Annotated[
        SeriesTimestamps | None,
        Field(description="One per value: ISO 8601 text or Unix epoch seconds. Optional."),
    ] = None,
    season_length: Annotated[
        int | None,
        Field(description="Season length in steps; inferred from timestamps or the data if absent."),
    ] = None,
    sensitivity: Annotated[str, Field(description="low, medium or high.")] = "medium",
    points: Annotated[
        Literal["all", "anomalous", "none"],
        Field(description="Which points to return: all, only the anomalous ones, or none."),
    ] = "all",
) -> dict[str, Any]:
    """Score every point of a series (causal: each point is judged on earlier points only, so a
    stream can be scored point by point). Returns {points: [{ds, value, score, expected, lower,
    upper, is_anomaly}], anomalies: [{start, end, peak, peak_score, points, kind}], season_length,
    freq, threshold, warnings}; kind is spike, level_shift, variance_change or seasonal. The
    first 21 points have no band (lower and upper null): the scale is not known yet. For a long
    series, `points="anomalous"` returns only the flagged points (each is about 150 bytes)."""
    from servers.anomaly.series import score_series as run

    def outcome(result: dict[str, Any]) -> str:
        return f"{len(result['anomalies'])} anomalies"

    return await _run(
        ctx,
        "score_series",
        lambda: run(values, timestamps, season_length, sensitivity, points),
        _count(values),
        outcome,
    )


@spec.tool(annotations=READ_ONLY)
async def score_table(
    rows: Annotated[
        TableRows, Field(description="Rows as objects {column: value} (or arrays with `features`).")
    ],
    ctx: Context[ServerRuntime, Any],
    features: Annotated[
        list[str] | None, Field(description="Numeric columns to use; default: every numeric column.")
    ] = None,
    method: Annotated[str, Field(description="auto, isolation_forest, lof or robust_z.")] = "auto",
    contamination: Annotated[
        float | None, Field(description="Share of rows to flag, in (0, 0.5]; default: the method's cut-off.")
    ] = None,
    detail: Annotated[
        Literal["all", "anomalous"],
        Field(description="all: scores, labels and contributions per row; anomalous: only the flagged rows."),
    ] = "all",
) -> dict[str, Any]:
    """Score each row. Returns {method, features, scores: [0..1 per row], labels: [true when
    anomalous], contributions: [{column: robust z} of the three most unusual columns per row],
    threshold, anomalies, warnings}. With detail="anomalous", `flagged: [{row, score,
    contributions}]` (most unusual first) replaces the three per-row lists."""
    from servers.anomaly.table import score_table as run

    def outcome(result: dict[str, Any]) -> str:
        return f"{result['method']}: {result['anomalies']} flagged"

    return await _run(
        ctx, "score_table", lambda: run(rows, features, method, contamination, detail), _count(rows), outcome
    )


@spec.tool(annotations=READ_ONLY)
async def score_answer(
    answer: Annotated[str, Field(description="The answer to check, with citation markers like [id].")],
    sources: Annotated[list[dict[str, Any]], Field(description="The cited passages: [{id, text}].")],
    ctx: Context[ServerRuntime, Any],
    retrieval_scores: Annotated[
        list[float] | None, Field(description="Retrieval scores of the passages, in [0, 1].")
    ] = None,
) -> dict[str, Any]:
    """Risk that an answer is wrong or unsafe to show: groundedness of each sentence against the
    cited sources (content words, numbers, names), PII in the answer, low retrieval confidence.
    Returns {risk: 0..1, reasons, ungrounded_sentences, pii: [{type, start, end, masked}], sentences}."""
    from servers.anomaly.answer import score_answer as run

    def outcome(result: dict[str, Any]) -> str:
        return f"risk {result['risk']}"

    return await _run(
        ctx, "score_answer", lambda: run(answer, sources, retrieval_scores), _count(answer), outcome
    )
