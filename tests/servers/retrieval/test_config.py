"""The retrieval settings: environment parsing, defaults and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.settings import Settings
from servers.retrieval.config import RetrievalConfig


def test_allowed_roots_default_to_the_uploads_folder_and_parse_both_list_forms(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path, database_url=None, redis_url=None, opa_url=None)
    assert RetrievalConfig.load().roots(settings) == [(tmp_path / "uploads").resolve()]
    monkeypatch.setenv("BASTION_RETRIEVAL_ALLOWED_ROOTS", f"{tmp_path}/a:{tmp_path}/b")
    assert RetrievalConfig.load().roots(settings) == [(tmp_path / "a").resolve(), (tmp_path / "b").resolve()]
    monkeypatch.setenv("BASTION_RETRIEVAL_ALLOWED_ROOTS", f'["{tmp_path}/c"]')
    assert RetrievalConfig.load().roots(settings) == [(tmp_path / "c").resolve()]


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_RETRIEVAL_FUSION", "median")
    with pytest.raises(ConfigError, match="BASTION_RETRIEVAL_FUSION='median'"):
        RetrievalConfig.load()
