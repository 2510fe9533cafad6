"""JSON into a `LoadPlan`: JSON lines, one array of objects, or one object (a row of its
own, or, holding exactly one array of objects as API exports do, those objects), parsed
and written row by row; nested objects and arrays become `jsonb`."""

from __future__ import annotations

from typing import Any, cast

import orjson
from psycopg import AsyncCopy, sql
from psycopg.types.json import Jsonb

from servers.analytics.catalog import ColumnSpec
from servers.analytics.errors import LoadError
from servers.analytics.infer import infer_json_type
from servers.analytics.load_plan import Input, LoadPlan, Progress, apply_types
from servers.analytics.names import column_names

__all__ = ["json_plan"]


def _json_records(source: Input) -> list[tuple[str, Any]]:
    """(where, record) pairs from a JSON array, JSON lines, or one JSON object: a row of its
    own, or, when it holds exactly one array of objects (`{"data": [...]}`, as APIs export),
    those objects."""
    with source.open() as f:
        data = f.read()
    data = data.removeprefix(b"\xef\xbb\xbf")
    text = data.lstrip(b" \t\r\n")
    if text.startswith(b"["):
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise LoadError(f"{source.label}: not valid JSON ({exc}); nothing was loaded") from None
        return [(f"element {i}", item) for i, item in enumerate(items)]
    records: list[tuple[str, Any]] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"line {number}", orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            if not records and text.startswith(b"{"):
                return _json_object(source, _json_document(source, text))  # spread over lines
            raise LoadError(
                f"{source.label}: line {number}: not valid JSON ({exc}); nothing was loaded"
            ) from None
    if len(records) == 1 and isinstance(records[0][1], dict):
        return _json_object(source, cast(dict[str, Any], records[0][1]))
    return records


def _json_document(source: Input, text: bytes) -> dict[str, Any]:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise LoadError(
            f"{source.label}: not valid JSON ({exc}); expected JSON lines, an array of objects or one "
            "object; nothing was loaded"
        ) from None


def _json_object(source: Input, document: dict[str, Any]) -> list[tuple[str, Any]]:
    arrays = [
        key
        for key, value in document.items()
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value)
    ]
    if not arrays:
        return [("the object", document)]
    if len(arrays) > 1:
        named = ", ".join(repr(key) for key in arrays[:5])
        raise LoadError(
            f"{source.label}: one JSON object with several arrays of rows ({named}): load one of them "
            "as its own file (an array of objects, or one object per line); nothing was loaded"
        )
    key = arrays[0]
    return [(f"{key}[{i}]", item) for i, item in enumerate(document[key])]


def _json_value(value: Any, pg_type: str) -> Any:
    if value is None:
        return None
    if pg_type == "jsonb":
        return Jsonb(value)
    if pg_type == "text" and not isinstance(value, str):
        return orjson.dumps(value).decode()
    return value


def json_plan(source: Input, overrides: dict[str, str] | None) -> LoadPlan:
    records = _json_records(source)
    keys: dict[str, None] = {}
    for where, record in records:
        if not isinstance(record, dict):
            raise LoadError(
                f"{source.label}: {where}: expected a JSON object per row, got {type(record).__name__}"
            )
        keys.update(dict.fromkeys(record))  # pyright: ignore[reportUnknownArgumentType]
    headers = list(keys)
    if not headers:
        raise LoadError(f"{source.label}: no fields found; a JSON dataset needs objects with fields")
    names = column_names(headers)
    columns: list[ColumnSpec] = [
        {"name": name, "type": infer_json_type(r.get(h) for _, r in records), "source_name": h}
        for name, h in zip(names, headers, strict=True)
    ]
    chosen = apply_types(columns, overrides)
    types = [c["type"] for c in columns]

    async def feed(copy: AsyncCopy, progress: Progress | None) -> None:
        total = len(records)
        for index, (_, record) in enumerate(records, start=1):
            await copy.write_row([_json_value(record.get(h), t) for h, t in zip(headers, types, strict=True)])
            if progress is not None and (index % 10_000 == 0 or index == total):
                progress(index, total)

    def locate(line: int) -> str:
        return records[line - 1][0] if 0 < line <= len(records) else f"row {line}"

    return LoadPlan("json", columns, sql.SQL("(FREEZE true)"), len(records), feed, locate, chosen=chosen)
