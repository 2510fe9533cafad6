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

__all__ = ["keyword_ranking", "vector_ranking"]

# Per query lexeme: its document frequency (an index-only count over its postings) folded
# into constant weights, then one pass over the same postings sums BM25 per chunk.
_BM25 = """
WITH q AS (SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %(query)s))),
st AS (
    SELECT greatest(sum(chunk_count), 1)::float8 AS n,
           greatest(sum(total_length), 1)::float8 / greatest(sum(chunk_count), 1) AS avgdl
    FROM retrieval.collections WHERE id = ANY(%(cols)s)
),
w AS (
    SELECT q.lexeme, ln(1 + (st.n - d.df + 0.5) / (d.df + 0.5)) * (%(k1)s + 1) AS idf,
           %(k1)s * (1 - %(b)s) AS c0, %(k1)s * %(b)s / st.avgdl AS c1
    FROM q CROSS JOIN st
    CROSS JOIN LATERAL (
        SELECT count(*)::float8 AS df FROM retrieval.postings p
        WHERE p.collection_id = ANY(%(cols)s) AND p.lexeme = q.lexeme
    ) d
    WHERE d.df > 0
),
scored AS (
    SELECT p.chunk_id, sum(w.idf * p.tf / (p.tf + w.c0 + w.c1 * p.dl)) AS score
    FROM w JOIN retrieval.postings p ON p.collection_id = ANY(%(cols)s) AND p.lexeme = w.lexeme
    GROUP BY p.chunk_id
)
"""


async def keyword_ranking(
    conn: AsyncConnection[Any],
    query: str,
    collection_ids: Sequence[int],
    filters: SearchFilters | None,
    *,
    limit: int,
    k1: float,
    b: float,
) -> list[tuple[int, float]]:
    """(chunk id, BM25 score) of the best `limit` chunks, best first."""
    where, params = filter_sql(filters)
    if where:
        tail = (
            "SELECT s.chunk_id, s.score FROM scored s JOIN retrieval.chunks c ON c.id = s.chunk_id "
            f"JOIN retrieval.documents d ON d.id = c.document_id WHERE true{where} "
            "ORDER BY s.score DESC, s.chunk_id LIMIT %(limit)s"
        )
    else:
        tail = "SELECT chunk_id, score FROM scored ORDER BY score DESC, chunk_id LIMIT %(limit)s"
    params.update(query=query, cols=list(collection_ids), k1=k1, b=b, limit=limit)
    cur = await conn.execute(trusted_sql(_BM25 + tail), params)
    return [(int(r[0]), float(r[1])) for r in await cur.fetchall()]


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
