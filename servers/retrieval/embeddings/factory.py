"""The embedding provider a `RetrievalConfig` asks for."""

from __future__ import annotations

from servers.retrieval.config import RetrievalConfig
from servers.retrieval.embeddings.base import EmbeddingProvider

__all__ = ["make_provider"]


def make_provider(config: RetrievalConfig) -> EmbeddingProvider:
    """Build (and load) the configured provider; blocking, so call it off the event loop."""
    if config.embedding == "ollama":
        from servers.retrieval.embeddings.ollama import OllamaProvider

        return OllamaProvider(config.ollama_url, config.ollama_model)
    from servers.retrieval.embeddings.onnx import MiniLMOnnxProvider

    return MiniLMOnnxProvider(config.onnx_model_path, config.tokenizer_path, threads=config.onnx_threads)
