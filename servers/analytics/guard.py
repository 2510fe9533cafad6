"""The SQL guard: parse with PostgreSQL's own parser, accept only what can only read.

`check_sql` parses with libpg_query (through pglast) and walks the raw parse tree:

- exactly one statement: SELECT, WITH, VALUES, TABLE, or EXPLAIN (without ANALYZE) of one;
- no SELECT INTO, no FOR UPDATE/SHARE, no data-modifying CTE, no utility statement;
- every function call on the allow-list (`_functions.ALLOWED_FUNCTIONS`), unqualified or
  in pg_catalog; no cast to an object-identifier type; operators only from pg_catalog;
- no relation in pg_catalog, information_schema or pg_toast, nor a bare `pg_*` name that
  the catalog schema would resolve; relations are returned for the caller to authorise.

The parser decodes comments, quoting and Unicode escapes exactly as the server will,
so none of them can hide a name from these checks. The statement text handed back is
the one statement, byte for byte as the caller wrote it, without a trailing `;`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from servers.analytics._functions import ALLOWED_FUNCTIONS, REFUSED_TYPES
from servers.analytics.errors import QueryRefusedError

__all__ = ["CATALOG_SCHEMAS", "CheckedQuery", "Relation", "check_sql"]

logger = logging.getLogger(__name__)

CATALOG_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast"})
_TABLESAMPLE_METHODS = frozenset({"bernoulli", "system"})
MAX_SQL_BYTES = 256 * 1024


@dataclass(frozen=True)
class Relation:
    """A table or view the query reads; `schema` is None when unqualified."""

    schema: str | None
    name: str


@dataclass
class CheckedQuery:
    """A statement that passed the guard, with what it reads."""

    text: str
    kind: Literal["select", "explain"]
    relations: list[Relation] = field(default_factory=list[Relation])
    param_count: int = 0


def _parse(sql: str) -> dict[str, Any]:
    try:
        from pglast import parser
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise QueryRefusedError("the SQL parser is not installed: pip install 'bastion[analytics]'") from None
    try:
        return orjson.loads(parser.parse_sql_json(sql))
    except parser.ParseError as exc:
        raise QueryRefusedError(f"not valid SQL: {exc}") from None


def _strings(items: Iterable[Any]) -> list[str]:
    return [str(item["String"]["sval"]) for item in items if isinstance(item, dict) and "String" in item]


def check_sql(sql: str) -> CheckedQuery:
    """Parse and check `sql`; raise QueryRefusedError saying why it may not run.

    Accepted statements are cached by text (dashboards repeat theirs); a copy is
    returned so a caller can never alter the cached one."""
    checked = _check_cached(sql)
    return CheckedQuery(checked.text, checked.kind, list(checked.relations), checked.param_count)


@functools.lru_cache(maxsize=512)
def _check_cached(sql: str) -> CheckedQuery:
    raw = sql.encode("utf-8")
    if len(raw) > MAX_SQL_BYTES:
        raise QueryRefusedError(f"the SQL is {len(raw)} bytes; the limit is {MAX_SQL_BYTES}")
    if "\x00" in sql:
        raise QueryRefusedError("the SQL contains a NUL character")
    tree = _parse(sql)
    stmts = tree.get("stmts") or []
    if not stmts:
        raise QueryRefusedError("the SQL holds no statement")
    if len(stmts) > 1:
        raise QueryRefusedError(
            f"one statement per query: found {len(stmts)} (separated by ';'). Send them one at a time."
        )
    entry = stmts[0]
    start = int(entry.get("stmt_location", 0))
    length = int(entry.get("stmt_len", 0)) or len(raw) - start
    text = raw[start : start + length].decode("utf-8").strip()
    ((node_type, body),) = entry["stmt"].items()
    walker = _Walker()
    if node_type == "SelectStmt":
        walker.select(body, frozenset())
        kind: Literal["select", "explain"] = "select"
    elif node_type == "ExplainStmt":
        for option in body.get("options") or []:
            if option.get("DefElem", {}).get("defname") == "analyze":
                raise QueryRefusedError("EXPLAIN ANALYZE executes the statement; use EXPLAIN without it")
        ((inner_type, inner),) = body["query"].items()
        if inner_type != "SelectStmt":
            raise QueryRefusedError(f"EXPLAIN is allowed for read-only queries only, not {_what(inner_type)}")
        walker.select(inner, frozenset())
        kind = "explain"
    else:
        raise QueryRefusedError(f"only SELECT, WITH, VALUES or EXPLAIN may run, not {_what(node_type)}")
    return CheckedQuery(text=text, kind=kind, relations=walker.relations, param_count=walker.max_param)


def _what(node_type: str) -> str:
    words = node_type.removesuffix("Stmt")
    spaced = "".join(f" {c}" if c.isupper() else c for c in words).strip().upper()
    return f"{spaced} ({node_type})"


class _Walker:
    """One pass over the raw parse tree, refusing on the first violation."""

    def __init__(self) -> None:
        self.relations: list[Relation] = []
        self.max_param = 0

    def select(self, body: dict[str, Any], scope: frozenset[str]) -> None:
        if body.get("intoClause"):
            raise QueryRefusedError("SELECT INTO creates a table; only reading is allowed")
        if body.get("lockingClause"):
            raise QueryRefusedError("FOR UPDATE/SHARE takes row locks; only reading is allowed")
        with_clause = body.get("withClause")
        if with_clause:
            scope = self._ctes(with_clause, scope)
        for key, value in body.items():
            if key != "withClause":
                self.visit(value, scope)

    def _ctes(self, clause: dict[str, Any], scope: frozenset[str]) -> frozenset[str]:
        ctes = [c["CommonTableExpr"] for c in clause.get("ctes") or []]
        names = [str(c["ctename"]) for c in ctes]
        recursive = bool(clause.get("recursive"))
        for index, cte in enumerate(ctes):
            ((query_type, query),) = cte["ctequery"].items()
            if query_type != "SelectStmt":
                raise QueryRefusedError(
                    f"the WITH query {names[index]!r} is {_what(query_type)}: data-modifying CTEs are refused"
                )
            # A non-recursive CTE sees only the ones before it; its own name is a table.
            visible = names if recursive else names[:index]
            self.select(query, scope | frozenset(visible))
        return scope | frozenset(names)

    def visit(self, value: Any, scope: frozenset[str]) -> None:
        if isinstance(value, list):
            for item in value:  # pyright: ignore[reportUnknownVariableType]
                self.visit(item, scope)
            return
        if not isinstance(value, dict):
            return
        node: dict[str, Any] = value  # pyright: ignore[reportUnknownVariableType]
        if len(node) == 1:
            ((key, body),) = node.items()
            if key[:1].isupper() and isinstance(body, dict):
                self._node(key, body, scope)  # pyright: ignore[reportUnknownArgumentType]
                return
        self._fields(node, scope)

    def _fields(self, node: dict[str, Any], scope: frozenset[str]) -> None:
        # Some fields hold a node without its type wrapper (a RangeVar, a TypeName).
        if "relname" in node:
            self._relation(node, scope)
            return
        if "names" in node and "typemod" in node:
            self._type(node)
        for value in node.values():
            self.visit(value, scope)

    def _node(self, node_type: str, body: dict[str, Any], scope: frozenset[str]) -> None:
        if node_type == "SelectStmt":
            self.select(body, scope)
        elif node_type.endswith("Stmt"):
            raise QueryRefusedError(f"{_what(node_type)} may not appear inside a query")
        elif node_type == "RangeVar":
            self._relation(body, scope)
        elif node_type == "FuncCall":
            self._function(body)
            self._fields(body, scope)
        elif node_type == "TypeName":
            self._type(body)
        elif node_type == "A_Expr":
            self._operator(body.get("name") or [])
            self._fields(body, scope)
        elif node_type == "ParamRef":
            self.max_param = max(self.max_param, int(body.get("number", 0)))
        elif node_type == "RangeTableSample":
            method = _strings(body.get("method") or [])
            if len(method) != 1 or method[0] not in _TABLESAMPLE_METHODS:
                raise QueryRefusedError(f"TABLESAMPLE method {'.'.join(method)!r} is not allowed")
            self._fields(body, scope)
        else:
            self._fields(body, scope)

    def _relation(self, body: dict[str, Any], scope: frozenset[str]) -> None:
        name = str(body["relname"])
        schema = body.get("schemaname")
        if body.get("catalogname"):
            raise QueryRefusedError(f"{body['catalogname']}.{schema}.{name}: a query never spans databases")
        if schema is None and name in scope:
            return
        if schema is not None and (schema in CATALOG_SCHEMAS or str(schema).startswith("pg_")):
            raise QueryRefusedError(
                f"{schema}.{name}: the system catalogs are not queryable; use list_datasets and describe"
            )
        if schema is None and name.startswith("pg_"):
            raise QueryRefusedError(
                f"{name}: names starting with pg_ resolve to the system catalogs, which are not queryable"
            )
        self.relations.append(Relation(None if schema is None else str(schema), name))

    def _function(self, body: dict[str, Any]) -> None:
        parts = _strings(body.get("funcname") or [])
        name = parts[-1] if parts else "?"
        if len(parts) > 2 or (len(parts) == 2 and parts[0] != "pg_catalog"):
            raise QueryRefusedError(f"function {'.'.join(parts)}(): only built-in functions may be called")
        if name not in ALLOWED_FUNCTIONS:
            raise QueryRefusedError(f"function {name}() is not on the allow-list of read-only functions")

    def _type(self, body: dict[str, Any]) -> None:
        parts = _strings(body.get("names") or [])
        if not parts:
            return
        if len(parts) > 1 and parts[0] != "pg_catalog":
            raise QueryRefusedError(f"type {'.'.join(parts)}: only built-in types may be named")
        if parts[-1] in REFUSED_TYPES:
            raise QueryRefusedError(f"type {parts[-1]} looks objects up in the system catalogs")

    def _operator(self, name: list[Any]) -> None:
        parts = _strings(name)
        if len(parts) > 1 and parts[0] != "pg_catalog":
            raise QueryRefusedError(f"operator {'.'.join(parts)}: only built-in operators may be used")
