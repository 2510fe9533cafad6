"""The Ollama provider against a local HTTP server that speaks Ollama's /api/embed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest

from servers.retrieval.embeddings.ollama import OllamaProvider
from servers.retrieval.errors import RetrievalError
from tests.http_stub import serving


class _Embed(BaseHTTPRequestHandler):
    seen: list[list[str]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body["model"] != "nomic-embed-text":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b'{"error": "model not found"}')
            return
        _Embed.seen.append(body["input"])
        vectors = [[float(len(text)), 1.0, 0.0] for text in body["input"]]
        payload = json.dumps({"embeddings": vectors}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        return


@pytest.fixture
def ollama_url() -> Iterator[str]:
    with serving(_Embed) as base:
        yield base


def test_ollama_embeddings_are_normalised_and_prefixed_for_nomic(ollama_url: str) -> None:
    provider = OllamaProvider(ollama_url, "nomic-embed-text")
    try:
        assert provider.dimension == 3 and provider.model_id == "ollama:nomic-embed-text"
        vectors = provider.embed_documents(["abc", "abcdef"])
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
        provider.embed_query("q")
        assert _Embed.seen[-2] == ["search_document: abc", "search_document: abcdef"]
        assert _Embed.seen[-1] == ["search_query: q"]
    finally:
        provider.close()


def test_an_unknown_model_or_unreachable_server_says_what_to_do(ollama_url: str) -> None:
    with pytest.raises(RetrievalError, match="ollama pull llama-nope"):
        OllamaProvider(ollama_url, "llama-nope")
    with pytest.raises(RetrievalError, match="cannot reach Ollama"):
        OllamaProvider("http://127.0.0.1:9", "nomic-embed-text")
