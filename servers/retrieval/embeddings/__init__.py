"""Embedding providers: the `EmbeddingProvider` interface, MiniLM on onnxruntime, Ollama."""

from servers.retrieval.embeddings.base import EmbeddingProvider, Vectors
from servers.retrieval.embeddings.factory import make_provider

__all__ = ["EmbeddingProvider", "Vectors", "make_provider"]
