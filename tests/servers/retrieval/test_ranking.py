"""The SQL rankers: BM25 equals the textbook formula; vector search finds the nearest chunks."""

from __future__ import annotations

import math

import pytest

from servers.retrieval import ranking
from servers.retrieval.ranking import DocumentFrequencies, keyword_ranking, vector_ranking
from tests.servers.retrieval.conftest import Retrieval

DOCS = [
    {"id": "1", "text": "The heart pumps blood. Blood carries oxygen to every organ of the body."},
    {"id": "2", "text": "Oxygen therapy helps patients with lung disease breathe."},
    {
        "id": "3",
        "text": "Plants release oxygen. Plants also store carbon in wood and roots, and blood is not "
        "involved.",
    },
    {"id": "4", "text": "Stock markets rose sharply on Tuesday."},
]


async def test_keyword_scores_are_bm25_over_english_lexemes(retrieval: Retrieval) -> None:
    collection = retrieval.collection()
    await retrieval.ingest(collection, documents=DOCS)
    query = "blood oxygen organs"
    async with retrieval.service.database.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, chunk_count, total_length, version FROM retrieval.collections WHERE name = %s",
            (collection,),
        )
        row = await cur.fetchone()
        assert row is not None
        cid, n, total, version = row
        cur = await conn.execute("SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %s))", (query,))
        terms = [r[0] for r in await cur.fetchall()]
        cur = await conn.execute(
            "SELECT chunk_id, lexeme, tf, dl FROM retrieval.postings WHERE collection_id = %s", (cid,)
        )
        postings = await cur.fetchall()
        frequencies = DocumentFrequencies()
        ranked = await keyword_ranking(
            conn, query, [(cid, version)], None, limit=10, k1=1.2, b=0.75, frequencies=frequencies
        )
        # The second time, the document frequencies come from the cache: same ranking.
        again = await keyword_ranking(
            conn, query, [(cid, version)], None, limit=10, k1=1.2, b=0.75, frequencies=frequencies
        )
        # Split across two connections by chunk-id range: the same ranking.
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ranking, "SPLIT_POSTINGS", 1)
            split = await keyword_ranking(
                conn,
                query,
                [(cid, version)],
                None,
                limit=10,
                k1=1.2,
                b=0.75,
                pool=retrieval.service.database.pool,
            )
    remembered = frequencies.known(((cid, version),), terms)
    assert {t: st.df for t, st in remembered.items()} == {
        t: float(sum(1 for p in postings if p[1] == t)) for t in terms
    }
    assert again == ranked
    assert split == ranked
    avgdl = total / n
    df = {t: sum(1 for p in postings if p[1] == t) for t in terms}
    expected: dict[int, float] = {}
    for chunk_id, lexeme, tf, dl in postings:
        if lexeme in df:
            idf = math.log(1 + (n - df[lexeme] + 0.5) / (df[lexeme] + 0.5))
            expected[chunk_id] = expected.get(chunk_id, 0.0) + idf * tf * 2.2 / (
                tf + 1.2 * (0.25 + 0.75 * dl / avgdl)
            )
    assert [c for c, _ in ranked] == sorted(expected, key=lambda c: -expected[c])
    for chunk_id, score in ranked:
        assert math.isclose(score, expected[chunk_id], rel_tol=1e-9)


async def test_a_query_of_stopwords_matches_nothing_by_keywords(retrieval: Retrieval) -> None:
    collection = retrieval.collection()
    await retrieval.ingest(collection, documents=DOCS)
    found = await retrieval.call(
        "search", {"query": "the and of", "collection": collection, "mode": "keyword"}
    )
    assert found["results"] == []


async def test_vector_search_ranks_by_cosine_similarity(retrieval: Retrieval) -> None:
    collection = retrieval.collection()
    await retrieval.ingest(collection, documents=DOCS)
    provider = await retrieval.service.provider()
    query = provider.embed_query("financial news about shares")
    async with retrieval.service.database.pool.connection() as conn:
        cur = await conn.execute("SELECT id FROM retrieval.collections WHERE name = %s", (collection,))
        row = await cur.fetchone()
        assert row is not None
        ranked = await vector_ranking(
            conn, query, [row[0]], None, model=provider.model_id, limit=4, ef_search=40
        )
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True) and len(ranked) == 4
    hits = await retrieval.call(
        "search", {"query": "financial news about shares", "collection": collection, "mode": "vector", "k": 1}
    )
    assert hits["results"][0]["document_id"] == "4"
