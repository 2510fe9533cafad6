"""The two rankers: BM25 over the postings, and cosine over the HNSW index.

BM25 (Robertson-Sparck Jones IDF, k1 and b from the config) is computed over the
`english` lexemes of the query: document frequencies are counted from the postings of
those lexemes across the searched collections, corpus size and average chunk length
come from the collections' counters. It is summed in this process over posting lists
kept in memory (`servers.retrieval.postings`), or in SQL for filtered searches and when
that memory is off; both rank alike. Filters never change the statistics, only which
chunks may rank.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from servers.retrieval.embeddings.base import Vectors
from servers.retrieval.filters import SearchFilters, filter_sql
from servers.retrieval.postings import PostingLists, bm25_top, read_postings
from servers.retrieval.schema import trusted_sql
from servers.retrieval.vectors import register_vector

__all__ = ["DocumentFrequencies", "LexemeStats", "keyword_ranking", "vector_ranking"]


Scope = tuple[tuple[int, int], ...]
"""The searched collections as sorted (id, version) pairs."""


@dataclass(frozen=True)
class LexemeStats:
    """How many chunks of a scope hold a lexeme, and the range of their chunk ids."""

    df: float
    first_chunk: int
    last_chunk: int


class DocumentFrequencies:
    """Lexeme statistics, remembered per collection version.

    Counting a lexeme's postings is a fifth of a long query's BM25 time at 100k chunks,
    and the count only changes when the collection does: every write bumps the
    collection's `version`, which is part of the key, so a stale count is never used.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._stats: dict[tuple[Scope, str], LexemeStats] = {}

    def known(self, scope: Scope, lexemes: Sequence[str]) -> dict[str, LexemeStats]:
        return {lex: st for lex in lexemes if (st := self._stats.get((scope, lex))) is not None}

    def remember(self, scope: Scope, counted: dict[str, LexemeStats]) -> None:
        if len(self._stats) + len(counted) > self.max_entries:
            self._stats.clear()  # versions move on; old entries are never asked for again
        for lexeme, stats in counted.items():
            self._stats[(scope, lexeme)] = stats


_LEXEMES = "SELECT coalesce(array_agg(DISTINCT lexeme), '{}') FROM unnest(to_tsvector('english', %s))"

# The query's lexemes with the searched collections' size and total length, in one round trip.
_LEXEMES_AND_SIZE = """
SELECT (SELECT coalesce(array_agg(DISTINCT lexeme), '{}') FROM unnest(to_tsvector('english', %(q)s))),
       coalesce(sum(chunk_count), 0)::float8, coalesce(sum(total_length), 0)::float8
FROM retrieval.collections WHERE id = ANY(%(cols)s)
"""

# An index-only pass over each lexeme's postings: its document frequency and id range.
_COUNT = """
SELECT q.lexeme, c.df, c.first_chunk, c.last_chunk
FROM unnest(%(lexemes)s::text[]) AS q(lexeme)
CROSS JOIN LATERAL (
    SELECT count(*)::float8 AS df, min(p.chunk_id) AS first_chunk, max(p.chunk_id) AS last_chunk
    FROM retrieval.postings p
    WHERE p.collection_id = ANY(%(cols)s) AND p.lexeme = q.lexeme
) c
"""

# Each lexeme's IDF and length constants (MATERIALIZED: computed once per lexeme, not once
# per posting), then one pass over its postings in the chunk-id range sums BM25 per chunk.
_BM25 = """
WITH st AS (
    SELECT greatest(sum(chunk_count), 1)::float8 AS n,
           greatest(sum(total_length), 1)::float8 / greatest(sum(chunk_count), 1) AS avgdl
    FROM retrieval.collections WHERE id = ANY(%(cols)s)
),
w AS MATERIALIZED (
    SELECT k.lexeme, ln(1 + (st.n - k.df + 0.5) / (k.df + 0.5)) * (%(k1)s + 1) AS idf,
           %(k1)s * (1 - %(b)s) AS c0, %(k1)s * %(b)s / st.avgdl AS c1
    FROM unnest(%(lexemes)s::text[], %(dfs)s::float8[]) AS k(lexeme, df) CROSS JOIN st
    WHERE k.df > 0
),
scored AS (
    SELECT p.chunk_id, sum(w.idf * p.tf / (p.tf + w.c0 + w.c1 * p.dl)) AS score
    FROM w JOIN retrieval.postings p ON p.collection_id = ANY(%(cols)s) AND p.lexeme = w.lexeme
        AND p.chunk_id BETWEEN %(first)s AND %(last)s
    GROUP BY p.chunk_id
)
"""

# Below this many postings one query is fastest; above it, two halves of the chunk-id
# range run at once on two connections (PostgreSQL runs each on its own core).
SPLIT_POSTINGS = 20_000


async def keyword_ranking(
    conn: AsyncConnection[Any],
    query: str,
    collections: Sequence[tuple[int, int]],
    filters: SearchFilters | None,
    *,
    limit: int,
    k1: float,
    b: float,
    frequencies: DocumentFrequencies | None = None,
    pool: AsyncConnectionPool[AsyncConnection[Any]] | None = None,
    postings: PostingLists | None = None,
) -> list[tuple[int, float]]:
    """(chunk id, BM25 score) of the best `limit` chunks, best first.

    `collections` are (id, version) pairs. With `postings` and no filters, BM25 is summed
    here over posting lists kept in memory (read from PostgreSQL the first time a lexeme is
    used). Otherwise it is summed in SQL: `frequencies` remembers lexeme statistics across
    calls, and with a `pool` a query over many postings is split across two connections."""
    if postings is not None and filters is None:
        return await _keyword_in_process(conn, query, collections, postings, limit=limit, k1=k1, b=b)
    cur = await conn.execute(_LEXEMES, (query,))
    row = await cur.fetchone()
    lexemes: list[str] = list(row[0]) if row else []
    if not lexemes:
        return []
    scope: Scope = tuple(sorted(collections))
    cols = [cid for cid, _ in collections]
    stats = frequencies.known(scope, lexemes) if frequencies is not None else {}
    missing = [lex for lex in lexemes if lex not in stats]
    if missing:
        cur = await conn.execute(trusted_sql(_COUNT), {"lexemes": missing, "cols": cols})
        counted = {
            str(lex): LexemeStats(float(df), int(first or 0), int(last or 0))
            for lex, df, first, last in await cur.fetchall()
        }
        if frequencies is not None:
            frequencies.remember(scope, counted)
        stats = {**stats, **counted}
    present = {lex: st for lex, st in stats.items() if st.df > 0}
    if not present:
        return []
    where, params = filter_sql(filters)
    if where:
        tail = (
            "SELECT s.chunk_id, s.score FROM scored s JOIN retrieval.chunks c ON c.id = s.chunk_id "
            f"JOIN retrieval.documents d ON d.id = c.document_id WHERE true{where} "
            "ORDER BY s.score DESC, s.chunk_id LIMIT %(limit)s"
        )
    else:
        tail = "SELECT chunk_id, score FROM scored ORDER BY score DESC, chunk_id LIMIT %(limit)s"
    statement = trusted_sql(_BM25 + tail)
    params.update(
        lexemes=list(present),
        dfs=[st.df for st in present.values()],
        cols=cols,
        k1=k1,
        b=b,
        limit=limit,
    )
    first = min(st.first_chunk for st in present.values())
    last = max(st.last_chunk for st in present.values())

    async def rank(on: AsyncConnection[Any], lo: int, hi: int) -> list[tuple[int, float]]:
        cur = await on.execute(statement, {**params, "first": lo, "last": hi})
        return [(int(r[0]), float(r[1])) for r in await cur.fetchall()]

    ranked: list[tuple[int, float]] = []
    total_postings = sum(st.df for st in present.values())
    if pool is not None and total_postings >= SPLIT_POSTINGS and last > first:
        middle = (first + last) // 2
        try:
            async with pool.connection(timeout=0.01) as other:
                halves: list[list[tuple[int, float]]] = [[], []]

                async def run(i: int, on: AsyncConnection[Any], lo: int, hi: int) -> None:
                    halves[i] = await rank(on, lo, hi)

                try:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(run, 0, conn, first, middle)
                        tg.start_soon(run, 1, other, middle + 1, last)
                except BaseExceptionGroup as group:
                    raise group.exceptions[0] from None  # one half's failure is the query's
                ranked = halves[0] + halves[1]
        except PoolTimeout:
            ranked = await rank(conn, first, last)  # no spare connection: one query
    else:
        ranked = await rank(conn, first, last)
    # Each half holds its own best `limit`; together they hold the best `limit` overall.
    ranked.sort(key=lambda item: (-item[1], item[0]))
    return ranked[:limit]


async def _keyword_in_process(
    conn: AsyncConnection[Any],
    query: str,
    collections: Sequence[tuple[int, int]],
    postings: PostingLists,
    *,
    limit: int,
    k1: float,
    b: float,
) -> list[tuple[int, float]]:
    cols = [cid for cid, _ in collections]
    cur = await conn.execute(_LEXEMES_AND_SIZE, {"q": query, "cols": cols})
    row = await cur.fetchone()
    if row is None or not row[0]:
        return []
    lexemes = [str(lex) for lex in row[0]]
    chunk_count, total_length = float(row[1]), float(row[2])
    # A list read after a write that raced this query is at least as new as `version`: only
    # queries racing the same write can see it, as they could in SQL.
    keys = {(cid, lex): (cid, version, lex) for cid, version in collections for lex in lexemes}
    found = {pair: got for pair, key in keys.items() if (got := postings.get(key)) is not None}
    missing = [lex for lex in lexemes if any((cid, lex) not in found for cid in cols)]
    if missing:
        read = await read_postings(conn, cols, missing)
        for pair, lists in read.items():
            postings.put(keys[pair], lists)
        found.update(read)
    per_lexeme = [[found[(cid, lex)] for cid in cols] for lex in lexemes]
    # Summing tens of thousands of postings takes a few ms of numpy, which releases the GIL:
    # in a thread, the query embedding and the HNSW search go on meanwhile.
    return await anyio.to_thread.run_sync(
        functools.partial(
            bm25_top,
            per_lexeme,
            chunk_count=chunk_count,
            avg_length=max(total_length, 1.0) / max(chunk_count, 1.0),
            k1=k1,
            b=b,
            limit=limit,
        )
    )


async def vector_ranking(
    conn: AsyncConnection[Any],
    vector: Vectors,
    collection_ids: Sequence[int],
    filters: SearchFilters | None,
    *,
    model: str,
    limit: int,
    ef_search: int,
) -> list[tuple[int, float]]:
    """(chunk id, cosine similarity) of the nearest `limit` chunks embedded by `model`, best first."""
    await register_vector(conn)
    dim = int(vector.shape[0])
    where, params = filter_sql(filters)
    join = " JOIN retrieval.documents d ON d.id = c.document_id" if where else ""
    params.update(q=np.asarray(vector, dtype=np.float32), cols=list(collection_ids), model=model, limit=limit)
    sql = (
        f"SELECT c.id, 1 - (c.embedding::vector({dim}) <=> %(q)s::vector({dim})) AS sim "
        f"FROM retrieval.chunks c{join} "
        f"WHERE c.dim = {dim} AND c.model = %(model)s AND c.collection_id = ANY(%(cols)s){where} "
        f"ORDER BY c.embedding::vector({dim}) <=> %(q)s::vector({dim}) LIMIT %(limit)s"
    )
    async with conn.transaction():
        # SET LOCAL takes no bind parameters; both values are integers or fixed words.
        await conn.execute(trusted_sql(f"SET LOCAL hnsw.ef_search = {max(int(ef_search), int(limit))}"))
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cur = await conn.execute(trusted_sql(sql), params)
        rows = await cur.fetchall()
    ranked = [(int(r[0]), float(r[1])) for r in rows]
    # relaxed_order may return near-ties slightly out of order.
    ranked.sort(key=lambda item: -item[1])
    return ranked
