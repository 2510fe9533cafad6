"""The retrieval tools end to end in-process, on the real embedded PostgreSQL."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from servers.retrieval import library, ranking
from servers.retrieval.embeddings.onnx import MiniLMOnnxProvider
from servers.retrieval.errors import RetrievalError
from servers.retrieval.service import RetrievalService, install_service
from tests.servers.retrieval.conftest import Retrieval
from tests.servers.retrieval.fixtures import make_docx, make_pdf

CATS = (
    "# Cats\n\nCats are small carnivorous mammals that purr.\n\n"
    "## Food\n\nCats eat fish, mice and dry kibble.\n"
)
DOGS = "Dogs are loyal companions. Dogs bark at strangers and fetch sticks in the park.\n"


async def _chunk_count(r: Retrieval, collection: str) -> int:
    stats = await r.call("collection_stats", {"collection": collection})
    return int(stats["chunks"])


async def _document_text(r: Retrieval, collection: str, document_id: str) -> str:
    doc = await r.call("get_document", {"collection": collection, "document_id": document_id})
    return str(doc["text"])


async def test_ingested_files_are_found_with_citations_that_point_at_the_passage(
    retrieval: Retrieval, write_files: Any
) -> None:
    (cats, _) = write_files({"cats.md": CATS, "dogs.txt": DOGS})
    collection = retrieval.collection()
    status = await retrieval.ingest(collection, paths=[str(retrieval.root)])
    assert status["state"] == "completed"
    assert status["counts"]["created"] == 2
    found = await retrieval.call("search", {"query": "what do cats eat", "collection": collection, "k": 3})
    top = found["results"][0]
    assert top["document_id"] == str(cats) and top["source"] == str(cats)
    text = await _document_text(retrieval, collection, top["document_id"])
    assert "Cats eat fish" in text[top["start"] : top["end"]]
    assert "<mark>" in top["snippet"]
    assert (top["title"], top["section"]) == ("Cats", "Cats > Food")


async def test_ingesting_the_same_content_twice_stores_it_once(
    retrieval: Retrieval, write_files: Any
) -> None:
    write_files({"a.txt": DOGS, "copy/b.txt": DOGS})
    collection = retrieval.collection()
    first = await retrieval.ingest(collection, paths=[str(retrieval.root)])
    assert (first["counts"]["created"], first["counts"]["duplicate"]) == (1, 1)
    chunks = await _chunk_count(retrieval, collection)
    again = await retrieval.ingest(collection, paths=[str(retrieval.root)])
    assert again["counts"]["unchanged"] == 1 and again["counts"]["duplicate"] == 1
    assert await _chunk_count(retrieval, collection) == chunks
    inline = await retrieval.ingest(collection, documents=[{"id": "d1", "text": "Birds fly south."}] * 1)
    inline_again = await retrieval.ingest(collection, documents=[{"id": "d1", "text": "Birds fly south."}])
    assert inline["counts"]["created"] == 1 and inline_again["counts"]["unchanged"] == 1


async def test_a_changed_file_replaces_its_old_chunks_atomically(
    retrieval: Retrieval, write_files: Any
) -> None:
    (path,) = write_files({"notes.md": CATS})
    collection = retrieval.collection()
    await retrieval.ingest(collection, paths=[str(path)])
    path.write_text("# Owls\n\nOwls hunt at night and swallow their prey whole.\n", encoding="utf-8")
    status = await retrieval.ingest(collection, paths=[str(path)])
    assert status["counts"]["replaced"] == 1
    stats = await retrieval.call("collection_stats", {"collection": collection})
    assert (stats["documents"], stats["chunks"]) == (1, 1)
    old = await retrieval.call("search", {"query": "kibble", "collection": collection, "mode": "keyword"})
    assert old["results"] == []
    new = await retrieval.call("search", {"query": "owls hunt", "collection": collection, "mode": "keyword"})
    assert [hit["title"] for hit in new["results"]] == ["Owls"]


async def test_prune_removes_the_documents_of_deleted_files_under_the_folder_and_nothing_else(
    retrieval: Retrieval, write_files: Any
) -> None:
    site = retrieval.root / "site"
    _, gone, deep_gone, elsewhere = write_files(
        {
            "site/keep.md": "# Keep\n\nLighthouses guide ships.\n",
            "site/gone.md": "# Gone\n\nWindmills grind grain.\n",
            "site/deep/old.txt": "Old notes about windmills and their sails.",
            "other/windmill.txt": "Windmills stand in another folder.",
        }
    )
    collection = retrieval.collection()
    inline = {"id": f"{site}/inline", "text": "Windmills given inline, under a path-like id."}
    await retrieval.ingest(collection, paths=[str(site), str(elsewhere)], documents=[inline])
    for path in (gone, deep_gone, elsewhere):
        path.unlink()

    async def documents() -> set[str]:
        found = await retrieval.call(
            "search", {"query": "windmills lighthouses", "collection": collection, "mode": "keyword", "k": 50}
        )
        return {hit["document_id"] for hit in found["results"]}

    before = await retrieval.ingest(collection, paths=[str(site)])
    assert before["counts"]["removed"] == 0 and len(await documents()) == 5  # without prune, kept
    pruned = await retrieval.ingest(collection, paths=[str(site)], prune=True)
    assert (pruned["counts"]["removed"], pruned["counts"]["unchanged"], pruned["errors"]) == (2, 1, [])
    # The folder's remaining file, a file of another folder, and an inline document stay.
    assert await documents() == {str(site / "keep.md"), str(elsewhere), inline["id"]}
    stats = await retrieval.call("collection_stats", {"collection": collection})
    assert stats["documents"] == 3
    again = await retrieval.ingest(collection, paths=[str(site)], prune=True)
    assert (again["counts"]["removed"], again["counts"]["unchanged"]) == (0, 1)
    refused = await retrieval.error(
        "ingest", {"collection": collection, "paths": [str(site / "keep.md")], "prune": True}
    )
    assert "no folder was given" in refused


async def test_prune_keeps_the_text_of_a_duplicate_whose_kept_file_is_gone(
    retrieval: Retrieval, write_files: Any
) -> None:
    # The same text in two files is stored once, under the first; prune that one and the
    # other file's document takes its place in the same job.
    first, second = write_files(
        {"dup/a.txt": "Tide tables for the harbour.", "dup/b.txt": "Tide tables for the harbour."}
    )
    collection = retrieval.collection()
    status = await retrieval.ingest(collection, paths=[str(retrieval.root / "dup")])
    assert (status["counts"]["created"], status["counts"]["duplicate"]) == (1, 1)
    first.unlink()
    pruned = await retrieval.ingest(collection, paths=[str(retrieval.root / "dup")], prune=True)
    assert (pruned["counts"]["removed"], pruned["counts"]["created"]) == (1, 1)
    found = await retrieval.call(
        "search", {"query": "tide tables", "collection": collection, "mode": "keyword"}
    )
    assert [hit["document_id"] for hit in found["results"]] == [str(second)]


async def test_offsets_point_at_the_right_text_for_every_format(
    retrieval: Retrieval, write_files: Any
) -> None:
    html = (
        "<html><head><title>Volcano page</title></head><body><nav>Home | Menu | Login</nav>"
        "<main><h1>Volcanoes</h1><p>Magma rises through the crust and erupts as lava.</p></main>"
        "<footer>Copyright footer text</footer></body></html>"
    )
    pdf = make_pdf([["Glaciers carve deep valleys."], ["Icebergs calve from tidewater glaciers."]])
    docx = make_docx(
        "Rivers", ["Rivers erode their banks."], "Deltas", ["Deltas form where rivers slow down."]
    )
    write_files({"a.txt": DOGS, "b.md": CATS, "c.html": html, "d.pdf": pdf, "e.docx": docx})
    collection = retrieval.collection()
    status = await retrieval.ingest(collection, paths=[str(retrieval.root)])
    assert status["counts"]["created"] == 5, status["errors"]
    expectations = {
        "fetch sticks": ("text", None),
        "fish mice kibble": ("markdown", None),
        "magma erupts lava": ("html", None),
        "icebergs calve": ("pdf", 2),
        "deltas rivers slow": ("docx", None),
    }
    for query, (kind, page) in expectations.items():
        found = await retrieval.call(
            "search",
            {"query": query, "collection": collection, "mode": "keyword", "filters": {"type": [kind]}},
        )
        hit = found["results"][0]
        text = await _document_text(retrieval, collection, hit["document_id"])
        passage = text[hit["start"] : hit["end"]].lower()
        assert all(word in passage for word in query.split()[:2]), (kind, passage)
        assert hit["page"] == page
        chunk = await retrieval.call("get_chunk", {"chunk_id": hit["chunk_id"]})
        assert chunk["chunk"]["text"] == text[hit["start"] : hit["end"]]
    nav = await retrieval.call(
        "search", {"query": "login menu copyright", "collection": collection, "mode": "keyword"}
    )
    assert nav["results"] == []  # navigation and footer are not content


# 1: every keyword search runs as two halves of the chunk-id range on two connections.
SPLITS = pytest.mark.parametrize("split_postings", [ranking.SPLIT_POSTINGS, 1], ids=["one-query", "split"])


@SPLITS
async def test_filters_narrow_by_tags_type_source_metadata_and_date(
    retrieval: Retrieval, write_files: Any, split_postings: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ranking, "SPLIT_POSTINGS", split_postings)
    (cats, dogs) = write_files({"cats.md": CATS, "dogs.txt": DOGS})
    collection = retrieval.collection()
    await retrieval.ingest(collection, paths=[str(cats)], tags=["pets", "felines"])
    await retrieval.ingest(collection, paths=[str(dogs)], tags=["pets"])
    await retrieval.ingest(
        collection,
        documents=[
            {
                "id": "n1",
                "title": "Pet news",
                "text": "Cats and dogs share homes.",
                "metadata": {"lang": "en", "date": "2020-01-01T00:00:00+00:00"},
            }
        ],
    )

    async def ids(filters: dict[str, Any]) -> set[str]:
        found = await retrieval.call(
            "search", {"query": "cats dogs", "collection": collection, "k": 20, "filters": filters}
        )
        return {hit["document_id"] for hit in found["results"]}

    assert await ids({"tags": ["felines"]}) == {str(cats)}
    assert await ids({"type": ["text"]}) == {str(dogs)}
    assert await ids({"source": f"{retrieval.root}/*.md"}) == {str(cats)}
    assert await ids({"metadata": {"lang": "en"}}) == {"n1"}
    assert await ids({"date_to": "2021-01-01T00:00:00Z"}) == {"n1"}
    assert await ids({"date_to": "2021-01-01T00:00:00"}) == {"n1"}  # no zone: UTC
    assert await ids({"date_from": "2021-01-01T00:00:00Z"}) == {str(cats), str(dogs)}
    assert await ids({"document_id": ["n1"]}) == {"n1"}


@SPLITS
async def test_a_caller_never_sees_chunks_outside_its_allowed_collections(
    retrieval: Retrieval, split_postings: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ranking, "SPLIT_POSTINGS", split_postings)
    open_c, secret_c = retrieval.collection(), retrieval.collection()
    await retrieval.ingest(
        open_c, documents=[{"id": "o", "text": "Public notes about the quarterly budget."}]
    )
    await retrieval.ingest(secret_c, documents=[{"id": "s", "text": "Secret budget of the merger project."}])
    bob = retrieval.signed((open_c,))
    found = await retrieval.call("search", {"query": "budget merger", "k": 50}, meta=bob)
    assert {hit["collection"] for hit in found["results"]} == {open_c}
    for mode in ("keyword", "vector"):
        found = await retrieval.call("search", {"query": "secret merger", "mode": mode, "k": 50}, meta=bob)
        assert all(hit["collection"] == open_c for hit in found["results"])
    assert "not among the collections" in await retrieval.error(
        "search", {"query": "x", "collection": secret_c}, bob
    )
    listed = await retrieval.call("list_collections", {}, meta=bob)
    assert [c["name"] for c in listed["collections"]] == [open_c]
    owner_hit = await retrieval.call("search", {"query": "merger", "collection": secret_c})
    chunk_id = owner_hit["results"][0]["chunk_id"]
    assert "no chunk" in await retrieval.error("get_chunk", {"chunk_id": chunk_id}, bob)
    assert "not among" in await retrieval.error(
        "get_document", {"collection": secret_c, "document_id": "s"}, bob
    )
    assert "not among" in await retrieval.error(
        "ingest", {"collection": secret_c, "documents": [{"id": "x", "text": "y"}]}, bob
    )


async def test_search_results_are_cached_until_the_collection_changes(retrieval: Retrieval) -> None:
    collection = retrieval.collection()
    await retrieval.ingest(collection, documents=[{"id": "a", "text": "Solar panels convert sunlight."}])
    query = {"query": "solar sunlight", "collection": collection}
    first = await retrieval.call("search", query)
    # The cache is written after the response goes out: the next identical search finds
    # it as soon as that write lands.
    second = await retrieval.call("search", query)
    for _ in range(100):
        if second["cached"]:
            break
        await anyio.sleep(0.02)
        second = await retrieval.call("search", query)
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["results"] == first["results"]
    await retrieval.ingest(
        collection, documents=[{"id": "b", "text": "Sunlight also warms solar water heaters."}]
    )
    third = await retrieval.call("search", query)
    assert third["cached"] is False
    assert {hit["document_id"] for hit in third["results"]} == {"a", "b"}


async def test_get_document_reads_the_range_a_citation_names_and_pages_through_long_text(
    retrieval: Retrieval, monkeypatch: pytest.MonkeyPatch
) -> None:
    collection = retrieval.collection()
    text = "Preface. " * 30 + "The boiler must be descaled every spring. " + "Index. " * 30
    await retrieval.ingest(collection, documents=[{"id": "manual", "text": text}])
    found = await retrieval.call("search", {"query": "descaled boiler", "collection": collection, "k": 1})
    hit = found["results"][0]
    cited = await retrieval.call(
        "get_document",
        {"collection": collection, "document_id": "manual", "start": hit["start"], "end": hit["end"]},
    )
    assert cited["text"] == text[hit["start"] : hit["end"]] and "descaled" in cited["text"]
    assert (cited["start"], cited["end"], cited["truncated"]) == (hit["start"], hit["end"], False)
    # One call returns at most MAX_TEXT_CHARS; `truncated` and `end` say where to go on.
    monkeypatch.setattr(library, "MAX_TEXT_CHARS", 100)
    pages, start = [], 0
    while True:
        page = await retrieval.call(
            "get_document", {"collection": collection, "document_id": "manual", "start": start}
        )
        pages.append(page["text"])
        if not page["truncated"]:
            break
        start = page["end"]
    assert "".join(pages) == text and len(pages) == -(-len(text) // 100)
    assert page["characters"] == len(text)
    for bad, said in (
        ({"start": -1}, "not a range"),
        ({"start": 10, "end": 5}, "not a range"),
        ({"start": len(text) + 1}, "past the end of the text"),
    ):
        assert said in await retrieval.error(
            "get_document", {"collection": collection, "document_id": "manual", **bad}
        )
    bare = await retrieval.call(
        "get_document", {"collection": collection, "document_id": "manual", "include_text": False}
    )
    assert "text" not in bare and bare["characters"] == len(text)


async def test_get_chunk_returns_its_neighbours_in_document_order(retrieval: Retrieval) -> None:
    collection = retrieval.collection()
    text = "\n\n".join(f"Paragraph {i} is about topic number {i} in a long report." * 6 for i in range(8))
    await retrieval.ingest(collection, documents=[{"id": "long", "title": "Report", "text": text}])
    found = await retrieval.call(
        "search", {"query": "paragraph 4 topic number 4", "collection": collection, "mode": "keyword"}
    )
    middle = await retrieval.call("get_chunk", {"chunk_id": found["results"][0]["chunk_id"], "neighbours": 1})
    ords = (
        [c["ord"] for c in middle["before"]] + [middle["chunk"]["ord"]] + [c["ord"] for c in middle["after"]]
    )
    assert ords == sorted(ords) and len(ords) >= 2
    for view in [*middle["before"], middle["chunk"], *middle["after"]]:
        assert text[view["start"] : view["end"]] == view["text"]


async def test_deleting_documents_and_collections_removes_them_from_search(retrieval: Retrieval) -> None:
    collection = retrieval.collection()
    await retrieval.ingest(
        collection,
        documents=[{"id": "x", "text": "Quantum tunnelling."}, {"id": "y", "text": "Quantum dots glow."}],
    )
    removed = await retrieval.call("delete_document", {"collection": collection, "document_id": "x"})
    assert removed["deleted"] is True
    found = await retrieval.call("search", {"query": "quantum", "collection": collection, "mode": "keyword"})
    assert [hit["document_id"] for hit in found["results"]] == ["y"]
    stats = await retrieval.call("collection_stats", {"collection": collection})
    assert (stats["documents"], stats["chunks"]) == (1, 1)
    await retrieval.call("delete_collection", {"collection": collection})
    assert "no collection" in await retrieval.error("search", {"query": "quantum", "collection": collection})


async def test_a_misnamed_collection_or_document_is_answered_with_the_nearest_name(
    retrieval: Retrieval, write_files: Any
) -> None:
    collection = retrieval.collection()
    (path,) = write_files({"tides.md": "# Tides\n\nThe moon pulls the sea.\n"})
    notes = [{"id": "one/notes.md", "text": "Spring tides."}, {"id": "two/notes.md", "text": "Neap tides."}]
    await retrieval.ingest(collection, paths=[str(path)], documents=notes)
    two = await retrieval.error("get_document", {"collection": collection, "document_id": "notes.md"})
    near_collection = await retrieval.error("search", {"query": "moon", "collection": collection[:-1]})
    stats = await retrieval.error("collection_stats", {"collection": collection + "s"})
    by_name = await retrieval.error("get_document", {"collection": collection, "document_id": "tides.md"})
    unlike = await retrieval.error("delete_document", {"collection": collection, "document_id": "x.md"})
    assert f"no collection named {collection[:-1]!r}; did you mean {collection!r}?" in near_collection
    assert f"did you mean {collection!r}? `list_collections` shows the ones you can read." in stats
    # A file's id is the path it was read from: its name alone finds it.
    assert f"no document 'tides.md' in collection {collection!r}; did you mean {str(path)!r}?" in by_name
    assert "did you mean 'one/notes.md' or 'two/notes.md'?" in two
    assert unlike.endswith(
        f"no document 'x.md' in collection {collection!r}. "
        "Document ids are the `document_id` that search results cite."
    )


async def test_documents_are_readable_as_resources(retrieval: Retrieval, write_files: Any) -> None:
    collection = retrieval.collection()
    (path,) = write_files({"naïve résumé.md": "# CV\n\nA file read as a resource.\n"})
    await retrieval.ingest(
        collection,
        paths=[str(path)],
        documents=[
            {"id": "r/1", "text": "Resource body text."},
            {"id": "100%25 ../x", "text": "An id with a percent sign and dots."},
        ],
    )
    # A file's id is its absolute path; every id travels URL-encoded and is decoded once.
    expected = {
        "r/1": "Resource body text.",
        "100%25 ../x": "An id with a percent sign and dots.",
        str(path): "# CV\n\nA file read as a resource.\n",
    }
    async with Client(retrieval.server) as client:
        for document_id, text in expected.items():
            result = await client.read_resource(
                f"retrieval://documents/{collection}/{quote(document_id, safe='')}"
            )
            assert getattr(result.contents[0], "text", None) == text
        with pytest.raises(MCPError, match="no document"):
            await client.read_resource(f"retrieval://documents/{collection}/{quote('/etc/passwd', safe='')}")


async def test_bad_input_gets_a_clear_error_and_loses_nothing_stored(
    retrieval: Retrieval, write_files: Any
) -> None:
    collection = retrieval.collection()
    await retrieval.ingest(
        collection, documents=[{"id": "keep", "text": "Precious stored knowledge about tides."}]
    )
    write_files(
        {
            "bad.xyz": "some text",
            "broken.pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage without xref",
            "empty.txt": "",
            "huge.txt": "word " * 50_000,
            "good.txt": "Tides follow the moon.",
        }
    )
    status = await retrieval.ingest(
        collection,
        paths=[
            str(retrieval.root / n) for n in ("bad.xyz", "broken.pdf", "empty.txt", "huge.txt", "good.txt")
        ],
    )
    errors = {e["item"].rsplit("/", 1)[-1]: e["error"] for e in status["errors"]}
    assert "unsupported file type '.xyz'" in errors["bad.xyz"]
    assert "PDF" in errors["broken.pdf"]
    assert "empty" in errors["empty.txt"]
    assert "exceeds the 200,000-byte limit" in errors["huge.txt"]
    assert status["counts"]["created"] == 1 and status["counts"]["failed"] == 4
    outside = await retrieval.error("ingest", {"collection": collection, "paths": ["/etc/passwd"]})
    assert "outside the allowed roots" in outside
    too_long = await retrieval.error("search", {"query": "tides " * 1000, "collection": collection})
    assert "the limit is 2,000" in too_long
    assert "mode" in await retrieval.error("search", {"query": "tides", "mode": "fuzzy"})
    assert "'md'" in await retrieval.error("search", {"query": "tides", "filters": {"type": ["md"]}})
    inverted = {"date_from": "2030-01-01T00:00:00", "date_to": "2020-01-01T00:00:00Z"}
    assert "is not before filters.date_to" in await retrieval.error(
        "search", {"query": "tides", "filters": inverted}
    )
    assert "invalid" in await retrieval.error(
        "ingest", {"collection": "../etc", "documents": [{"id": "a", "text": "b"}]}
    )
    found = await retrieval.call(
        "search", {"query": "tides", "collection": collection, "mode": "keyword", "k": 5}
    )
    assert {hit["document_id"] for hit in found["results"]} == {"keep", str(retrieval.root / "good.txt")}


class _FailingQueries(MiniLMOnnxProvider):
    """A provider whose query embedding fails, as an Ollama server that went away would."""

    def embed_query(self, text: str) -> Any:
        raise RetrievalError("the embedding model went away; start it again")


async def test_a_failing_ranker_reports_its_own_error_and_keyword_search_still_works(
    retrieval: Retrieval,
) -> None:
    collection = retrieval.collection()
    await retrieval.ingest(collection, documents=[{"id": "a", "text": "Glass is an amorphous solid."}])
    old = retrieval.service
    failing = RetrievalService(
        settings=old.settings,
        database=old.database,
        store=old.store,
        config=old.config,
        provider=_FailingQueries(),
    )
    install_service(retrieval.runtime, failing)
    message = await retrieval.error("search", {"query": "amorphous glass", "collection": collection})
    assert "the embedding model went away" in message
    found = await retrieval.call(
        "search", {"query": "amorphous glass", "collection": collection, "mode": "keyword"}
    )
    assert [hit["document_id"] for hit in found["results"]] == ["a"]
