"""Settings: one read, clear errors naming the key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from bastion.errors import ConfigError
from bastion.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("DATABASE_URL", "REDIS_URL", "OPA_URL", "BASTION_CONFIG", "BASTION_PORT", "BASTION_HOME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "home"))


def test_environment_overrides_the_toml_file_which_overrides_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "bastion.toml").write_text(
        'port = 9001\nlog_level = "debug"\n[servers.system]\ntransport = "http"\n'
    )
    monkeypatch.setenv("BASTION_PORT", "9002")
    settings = load_settings()
    assert settings.port == 9002
    assert settings.log_level == "DEBUG"
    assert settings.servers["system"].transport == "http"
    assert settings.home == tmp_path / "home"


def test_conventional_service_urls_are_read_and_secrets_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:s3cret@db.internal:5432/bastion")
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@cache:6379/0")
    settings = load_settings()
    shown = settings.redacted()
    assert shown["database_url"] == "postgresql://app:***@db.internal:5432/bastion"
    assert shown["redis_url"] == "redis://:***@cache:6379/0"
    assert "s3cret" not in repr(settings) and "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("BASTION_PORT", "abc", "BASTION_PORT='abc': Input should be a valid integer"),
        ("BASTION_PORT", "70000", "BASTION_PORT='70000': Input should be less than or equal to 65535"),
        ("BASTION_LOG_FORMAT", "xml", "BASTION_LOG_FORMAT='xml': expected 'auto', 'json' or 'text'"),
        ("BASTION_DB_POOL_MAX", "0", "BASTION_DB_POOL_MAX='0': Input should be greater than or equal to 1"),
    ],
)
def test_a_bad_value_names_the_key_the_value_and_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert expected in str(caught.value)


def test_a_malformed_toml_file_is_named_with_its_error(tmp_path: Path) -> None:
    (tmp_path / "bastion.toml").write_text("port = = 1\n")
    with pytest.raises(ConfigError, match=r"bastion.toml: malformed TOML \(.*line 1"):
        load_settings()


def test_an_unknown_key_in_the_toml_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bastion.toml").write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="BASTION_PROT: unknown setting"):
        load_settings()


def test_a_missing_explicit_config_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BASTION_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="no such file"):
        load_settings()


def test_an_upstream_concurrency_limit_below_zero_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "bastion.toml").write_text(
        '[upstreams.crm]\ntransport = "http"\nurl = "http://127.0.0.1:9/mcp"\nmax_concurrency = -1\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "upstreams.crm.max_concurrency=-1: Input should be greater than or equal to 0" in str(caught.value)
    (tmp_path / "bastion.toml").write_text(
        '[upstreams.crm]\ntransport = "http"\nurl = "http://127.0.0.1:9/mcp"\nslow_call_ms = 0\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "upstreams.crm.slow_call_ms=0: Input should be greater than or equal to 1" in str(caught.value)
    (tmp_path / "bastion.toml").write_text(
        '[upstreams.crm]\ntransport = "http"\nurl = "http://127.0.0.1:9/mcp"\nmax_concurrency = 4\n'
    )
    assert load_settings().upstreams["crm"].max_concurrency == 4


@pytest.mark.parametrize(
    "url",
    ["opa.local:8181", "http://127.0.0.1:abc", "http://127.0.0.1:99999", "ftp://opa:21", "http://:8181"],
)
def test_an_opa_url_the_gateway_cannot_use_is_refused_by_name_at_load(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("OPA_URL", url)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert f"OPA_URL (or BASTION_OPA_URL)={url!r}: expected an http:// or https:// URL" in str(caught.value)


def test_the_opa_password_is_hidden_from_config_show_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPA_URL", "http://opa:s3cret@opa.internal:8181")
    assert load_settings().redacted()["opa_url"] == "http://opa:***@opa.internal:8181"
    monkeypatch.setenv("OPA_URL", "opa:s3cret@opa.internal:8181")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "'opa:***@opa.internal:8181'" in str(caught.value) and "s3cret" not in str(caught.value)


FLOAT_FIELDS = [
    name
    for name, field in Settings.model_fields.items()
    if float in (field.annotation, *get_args(field.annotation))
]


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400"])
@pytest.mark.parametrize("field", FLOAT_FIELDS)
def test_no_float_setting_accepts_infinity_or_nan(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str
) -> None:
    key = f"BASTION_{field.upper()}"
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=f"{key}='{value}'"):
        load_settings()


def test_trusted_proxies_are_addresses_or_networks_written_out_canonically(tmp_path: Path) -> None:
    assert load_settings().trusted_proxies == ["127.0.0.1", "::1"]  # a reverse proxy on this machine
    (tmp_path / "bastion.toml").write_text('trusted_proxies = ["10.1.2.3/8", " 2001:DB8::1 "]\n')
    assert load_settings().trusted_proxies == ["10.0.0.0/8", "2001:db8::1"]
    (tmp_path / "bastion.toml").write_text('trusted_proxies = ["ingress.local"]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "'ingress.local' is not an IP address or network" in str(caught.value)
    assert "[] believes no proxy" in str(caught.value)


def test_a_list_setting_from_the_environment_that_is_not_json_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BASTION_ALLOWED_HOSTS", "bastion.internal")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "BASTION_ALLOWED_HOSTS is not JSON" in str(caught.value)
    monkeypatch.setenv("BASTION_ALLOWED_HOSTS", '["bastion.internal"]')
    assert load_settings().allowed_hosts == ["bastion.internal"]
