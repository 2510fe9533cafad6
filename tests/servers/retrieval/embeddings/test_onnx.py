"""The packaged MiniLM on onnxruntime: normalised 384-d vectors that mean something."""

from __future__ import annotations

import numpy as np

from servers.retrieval.embeddings.onnx import MiniLMOnnxProvider, packaged_model_files


def test_the_model_and_tokenizer_come_from_installed_packages() -> None:
    model, tokenizer = packaged_model_files()
    assert model.name == "model.onnx" and "site-packages" in str(model)
    assert tokenizer.name == "tokenizer.json"


def test_vectors_are_normalised_and_similar_sentences_are_closer(provider: MiniLMOnnxProvider) -> None:
    vectors = provider.embed_documents(
        ["A cat sits on the mat.", "A kitten is resting on a rug.", "Interest rates rose again."]
    )
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert provider.embed_query("A cat sits on the mat.") @ vectors[0] > 0.999


def test_token_spans_point_into_the_text(provider: MiniLMOnnxProvider) -> None:
    text = "Tokenisation works, mostly."
    spans = provider.token_spans(text)
    pieces = [text[a:b] for a, b in spans]
    assert len(pieces) > 4 and pieces[0] == "Token" and pieces[-1] == "."
    assert "".join(text[a:b] for a, b in spans).replace(" ", "") == text.replace(" ", "")
