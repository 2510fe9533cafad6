"""The two rankers, in SQL: BM25 over the postings, and cosine over the HNSW index.

BM25 (Robertson-Sparck Jones IDF, k1 and b from the config) is computed over the
`english` lexemes of the query: document frequencies are counted from the postings of
those lexemes across the searched collections, corpus size and average chunk length
come from the collections' counters. Filters never change the statistics, only which
chunks may rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from psycopg import AsyncConnection

from servers.retrieval.embeddings.base import Vectors
from servers.retrieval.filters import SearchFilters, filter_sql
from servers.retrieval.schema import trusted_sql
from servers.retrieval.vectors import register_vector

__all__ = ["DocumentFrequencies", "keyword_ranking", "vector_ranking"]


class DocumentFrequencies:
    """Document frequencies of lexemes, remembered per collection version.

    Counting a lexeme's postings is a fifth of a long query's BM25 time at 100k chunks,
    and the count only changes when the collection does: every write bumps the
    collection's `version`, which is part of the key, so a stale count is never used.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._counts: dict[tuple[tuple[tuple[int, int], ...], str], float] = {}

    def known(self, scope: tuple[tuple[int, int], ...], lexemes: Sequence[str]) -> dict[str, float]:
        return {lex: df for lex in lexemes if (df := self._counts.get((scope, lex))) is not None}

    def remember(self, scope: tuple[tuple[int, int], ...], counted: dict[str, float]) -> None:
        if len(self._counts) + len(counted) > self.max_entries:
            self._counts.clear()  # versions move on; old entries are never asked for again
        for lexeme, df in counted.items():
            self._counts[(scope, lexeme)] = df


# Per query lexeme: its document frequency (remembered, or an index-only count over its
# postings) folded into constant weights, then one pass over the same postings sums BM25
# per chunk. MATERIALIZED keeps the weights computed once per lexeme, not per posting.
_BM25 = """
WITH q AS (SELECT unnest(%(lexemes)s::text[]) AS lexeme),
known AS (SELECT * FROM unnest(%(known)s::text[], %(known_df)s::float8[]) AS k(lexeme, df)),
st AS (
    SELECT greatest(sum(chunk_count), 1)::float8 AS n,
           greatest(sum(total_length), 1)::float8 / greatest(sum(chunk_count), 1) AS avgdl
    FROM retrieval.collections WHERE id = ANY(%(cols)s)
),
freq AS MATERIALIZED (
    SELECT q.lexeme, k.df IS NULL AS counted,
           coalesce(k.df, (
               SELECT count(*) FROM retrieval.postings p
               WHERE p.collection_id = ANY(%(cols)s) AND p.lexeme = q.lexeme
           )::float8) AS df
    FROM q LEFT JOIN known k USING (lexeme)
),
w AS MATERIALIZED (
    SELECT f.lexeme, ln(1 + (st.n - f.df + 0.5) / (f.df + 0.5)) * (%(k1)s + 1) AS idf,
           %(k1)s * (1 - %(b)s) AS c0, %(k1)s * %(b)s / st.avgdl AS c1
    FROM freq f CROSS JOIN st
    WHERE f.df > 0
),
scored AS (
    SELECT p.chunk_id, sum(w.idf * p.tf / (p.tf + w.c0 + w.c1 * p.dl)) AS score
    FROM w JOIN retrieval.postings p ON p.collection_id = ANY(%(cols)s) AND p.lexeme = w.lexeme
    GROUP BY p.chunk_id
),
"""

# The counts made for this query come back after the hits, for the cache.
_COUNTED = """
SELECT chunk_id, score, NULL::text AS lexeme FROM ranked
UNION ALL
SELECT NULL, df, lexeme FROM freq WHERE counted
"""


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
) -> list[tuple[int, float]]:
    """(chunk id, BM25 score) of the best `limit` chunks, best first.

    `collections` are (id, version) pairs; `frequencies` remembers document frequencies
    across calls."""
    cur = await conn.execute(
        "SELECT coalesce(array_agg(DISTINCT lexeme), '{}') FROM unnest(to_tsvector('english', %s))", (query,)
    )
    row = await cur.fetchone()
    lexemes: list[str] = list(row[0]) if row else []
    if not lexemes:
        return []
    scope = tuple(sorted(collections))
    known = frequencies.known(scope, lexemes) if frequencies is not None else {}
    where, params = filter_sql(filters)
    if where:
        tail = (
            "ranked AS (SELECT s.chunk_id, s.score FROM scored s "
            "JOIN retrieval.chunks c ON c.id = s.chunk_id "
            f"JOIN retrieval.documents d ON d.id = c.document_id WHERE true{where} "
            "ORDER BY s.score DESC, s.chunk_id LIMIT %(limit)s)"
        )
    else:
        tail = "ranked AS (SELECT chunk_id, score FROM scored ORDER BY score DESC, chunk_id LIMIT %(limit)s)"
    params.update(
        lexemes=lexemes,
        known=list(known),
        known_df=list(known.values()),
        cols=[cid for cid, _ in collections],
        k1=k1,
        b=b,
        limit=limit,
    )
    cur = await conn.execute(trusted_sql(_BM25 + tail + _COUNTED), params)
    ranked: list[tuple[int, float]] = []
    counted: dict[str, float] = {}
    for chunk_id, value, lexeme in await cur.fetchall():
        if lexeme is None:
            ranked.append((int(chunk_id), float(value)))
        else:
            counted[str(lexeme)] = float(value)
    if frequencies is not None and counted:
        frequencies.remember(scope, counted)
    ranked.sort(key=lambda item: (-item[1], item[0]))
    return ranked


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
