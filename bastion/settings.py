"""Typed settings, read once at the entry point and passed down.

Sources, strongest first: `BASTION_*` environment variables (plus the conventional
`DATABASE_URL`, `REDIS_URL` and `OPA_URL`), then `bastion.toml` (the file named by
`BASTION_CONFIG`, else `./bastion.toml`, else `$BASTION_HOME/bastion.toml`), then the
embedded defaults. A bad value fails at start naming the key, the value and what is
allowed.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from bastion.errors import ConfigError

__all__ = [
    "ServerConfig",
    "Settings",
    "UpstreamConfig",
    "VirtualServerConfig",
    "default_home",
    "load_settings",
    "redact_url",
]

ENV_PREFIX = "BASTION_"


def default_home() -> Path:
    """Where an instance keeps its data when `BASTION_HOME` is unset.

    As root the embedded PostgreSQL runs as a separate system user that must be able
    to traverse every parent folder of its data, so root's default lives outside
    `/root` instead of opening `/root` to other users.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/bastion")
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "bastion"


# Calls a server on this machine gets at once by default, and when a call stops counting
# (docs/configuration.md, docs/benchmarks/gateway.md).
LOCAL_MAX_CONCURRENCY = 8
SLOW_CALL_MS = 50


class CallLimitConfig(BaseModel):
    """How many calls the gateway sends one server at once, and for how long (docs/configuration.md)."""

    model_config = {"extra": "forbid", "allow_inf_nan": False}

    max_concurrency: int | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description="calls sent to this server at once; more wait their turn in the gateway "
        f"(unset: {LOCAL_MAX_CONCURRENCY} for a server on this machine, stdio or a loopback URL, "
        "no limit for a remote one; 0: no limit)",
    )
    slow_call_ms: int = Field(
        default=SLOW_CALL_MS,
        ge=1,
        le=3_600_000,
        description="a call running longer than this stops counting toward max_concurrency, "
        "so slow tools never hold fast calls up for longer",
    )
    strict_concurrency: bool = Field(
        default=False,
        description="count every call until it ends (a hard limit, for a server that must never "
        "see more than max_concurrency calls at once)",
    )
    call_timeout: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="seconds one request to this server may take, a request it relays back to "
        "the calling client (elicitation, sampling, roots) included; then it fails naming the server",
    )


class ServerConfig(CallLimitConfig):
    """How the supervisor or gateway runs one built-in MCP server."""

    transport: Literal["stdio", "http"] = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port")


class UpstreamConfig(CallLimitConfig):
    """An external MCP server the gateway puts behind its endpoint."""

    transport: Literal["stdio", "http"]
    command: str | None = Field(default=None, description="stdio: the program to run")
    args: list[str] = Field(default_factory=list[str])
    env: dict[str, str] = Field(default_factory=dict[str, str], description="stdio: extra environment")
    cwd: str | None = None
    url: str | None = Field(default=None, description="http: the Streamable HTTP endpoint")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict[str, SecretStr], description="http: sent on every request"
    )
    dual_era: bool = Field(
        default=True,
        description="also connect in the 2026-07-28 era for 2026-07-28 clients when the server speaks it "
        "(stdio: a second process); off: every client is served over the handshake-era connection",
    )

    @model_validator(mode="after")
    def _complete(self) -> UpstreamConfig:
        if self.transport == "stdio" and not self.command:
            raise ValueError("a stdio upstream needs `command`")
        if self.transport == "http" and not self.url:
            raise ValueError("an http upstream needs `url`")
        return self


class VirtualServerConfig(BaseModel):
    """A subset of the gateway's tools, resources and prompts at `/mcp/<name>`."""

    model_config = {"extra": "forbid"}

    upstreams: list[str] = Field(default_factory=list[str], description="whole upstreams to include")
    tools: list[str] = Field(default_factory=list[str], description="exposed tool names or globs to include")
    allow_loopback_test_principal: bool = Field(
        default=False,
        description="admit unauthenticated loopback clients as the test principal (conformance runs only)",
    )


class Settings(BaseSettings):
    """Everything a Bastion process needs to know about its instance."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        populate_by_name=True,
        validate_default=True,
        allow_inf_nan=False,  # an infinite rate or timeout passes `ge=0` and fails at start
    )

    home: Path = Field(default_factory=default_home, description="instance data folder")
    database_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("BASTION_DATABASE_URL", "DATABASE_URL", "database_url"),
        description="external PostgreSQL with pgvector; unset runs the embedded server",
    )
    redis_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("BASTION_REDIS_URL", "REDIS_URL", "redis_url"),
        description="Redis for stores; unset keeps stores in PostgreSQL",
    )
    opa_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("BASTION_OPA_URL", "OPA_URL", "opa_url"),
        description="OPA REST endpoint; unset uses the embedded Rego engine",
    )
    host: str = Field(default="127.0.0.1", description="gateway listen address")
    port: int = Field(default=8765, ge=1, le=65535, description="gateway listen port")
    allowed_origins: list[str] = Field(
        default_factory=list[str], description="browser origins allowed besides the gateway's own"
    )
    allowed_hosts: list[str] = Field(
        default_factory=list[str], description="Host names accepted on loopback besides localhost"
    )
    trusted_proxies: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="proxies (addresses or networks) whose X-Forwarded-For is believed; [] believes none",
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="bearer token for /metrics scrapers beyond loopback"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", description="auto: text on a terminal, JSON otherwise"
    )
    embedded_shared_buffers_mb: int | None = Field(
        default=None,
        ge=16,
        le=262_144,
        description="shared_buffers of the embedded PostgreSQL in MB; unset: an eighth of RAM, 128 to 2048",
    )
    db_pool_min: int = Field(default=1, ge=0, le=100)
    db_pool_max: int = Field(default=10, ge=1, le=1000)
    db_connect_timeout: float = Field(default=10.0, gt=0, le=300)
    startup_timeout: float = Field(default=60.0, gt=0, le=600, description="seconds to wait for a child")
    restart_backoff_max: float = Field(default=30.0, gt=0, le=3600)
    servers: dict[str, ServerConfig] = Field(
        default_factory=dict, description="built-in servers to run over HTTP under the supervisor"
    )
    api_key_cache_ttl: float = Field(
        default=10.0, gt=0, le=3600, description="seconds a verified key is cached"
    )
    session_idle_timeout: float = Field(
        default=1800.0, gt=0, le=86400, description="seconds a 2025-11-25 session may idle before it ends"
    )
    request_read_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="seconds a client has to send a whole request; later: 408 and the connection closed",
    )
    rate_limit_per_second: float = Field(
        default=50.0, ge=0, description="calls per principal per second; 0 is off"
    )
    rate_limit_burst: int = Field(default=100, ge=1)
    rate_limit_tool_per_second: float = Field(
        default=20.0, ge=0, description="calls per principal and tool; 0 is off"
    )
    rate_limit_tool_burst: int = Field(default=40, ge=1)
    audit_durability: Literal["flush", "commit"] = Field(
        default="flush", description="flush: wait for the WAL on disk; commit: survive gateway crashes only"
    )
    audit_refusal_window: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="seconds: refused credentials and principal rate-limit refusals are audited "
        "once per source in each, the rest counted into one event",
    )
    policy_dir: Path | None = Field(
        default=None, description="folder of Rego policies and data; unset: the shipped one"
    )
    policy_reload_interval: float = Field(
        default=1.0, ge=0, le=3600, description="seconds between checks; 0 is off"
    )
    policy_cache_ttl: float = Field(
        default=5.0, ge=0, le=3600, description="seconds a decision is cached; 0 is off"
    )
    policy_cache_size: int = Field(
        default=10_000, ge=0, le=10_000_000, description="most cached decisions; 0 is off"
    )
    opa_decision_path: str = Field(
        default="bastion/authz/decision", description="OPA data path of the decision"
    )
    opa_timeout: float = Field(default=1.0, gt=0, le=60, description="seconds to wait for OPA; then deny")
    opa_poll_interval: float = Field(
        default=5.0, ge=0, le=3600, description="seconds between looks for a changed policy in OPA; 0 is off"
    )
    require_caller_context: bool = Field(
        default=False, description="servers refuse requests without a signed caller context, even over stdio"
    )
    builtin_servers: list[str] | None = Field(
        default=None, description="built-in servers the gateway exposes; unset means all"
    )
    upstreams: dict[str, UpstreamConfig] = Field(
        default_factory=dict, description="external MCP servers behind the gateway"
    )
    virtual_servers: dict[str, VirtualServerConfig] = Field(
        default_factory=dict, description="subsets of the catalog at /mcp/<name>"
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("opa_url", mode="after")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            parts = urlsplit(value)
            port = parts.port  # raises for a port that is not a number in 0-65535
        except ValueError:
            parts, port = None, None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or port == 0
            or any(char.isspace() for char in value)
        ):
            raise ValueError(
                "expected an http:// or https:// URL with a host and a valid port, such as http://127.0.0.1:8181"
            )
        return value

    @field_validator("trusted_proxies", mode="after")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        # Written out canonically (10.1.2.3/8 as 10.0.0.0/8): uvicorn would take a network with
        # host bits set, or any other odd spelling, for a literal no client address matches.
        canonical: list[str] = []
        for entry in value:
            text = entry.strip()
            try:
                if "/" in text:
                    canonical.append(str(ipaddress.ip_network(text, strict=False)))
                else:
                    canonical.append(str(ipaddress.ip_address(text)))
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network: list proxies as addresses (10.0.0.5) "
                    "or networks (10.0.0.0/8); [] believes no proxy"
                ) from None
        return canonical

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    def redacted(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets replaced by `***`."""
        data = self.model_dump(mode="json")
        for key in ("database_url", "redis_url"):
            if data.get(key):
                data[key] = redact_url(getattr(self, key).get_secret_value())
        if self.opa_url:
            data["opa_url"] = redact_url(self.opa_url)
        if data.get("metrics_token"):
            data["metrics_token"] = "***"  # noqa: S105 - the redaction marker
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))


def redact_url(url: str) -> str:
    """Keep scheme, user, host and path; hide the password (also in a URL without a scheme)."""
    head, sep, rest = url.partition("://")
    if not sep:
        head, rest = "", url
    netloc, slash, path = rest.partition("/")
    creds, at, host = netloc.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{head}{sep}{creds.split(':', 1)[0]}:***@{host}{slash}{path}"


class _TomlSource(PydanticBaseSettingsSource):
    """Values from `bastion.toml`, parsed with a clear error for a malformed file."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._data = _read_toml(config_path())

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def config_path() -> Path | None:
    """The `bastion.toml` in force, if any."""
    explicit = os.environ.get("BASTION_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"BASTION_CONFIG={explicit!r}: no such file. Point it at a bastion.toml or unset it."
            )
        return path
    local = Path("bastion.toml")
    if local.is_file():
        return local
    home = os.environ.get("BASTION_HOME")
    candidate = (Path(home).expanduser() if home else default_home()) / "bastion.toml"
    return candidate if candidate.is_file() else None


def _read_toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML ({exc}). Fix the file or remove it.") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror}). Check its permissions.") from exc


def _describe_error(error: Any) -> str:
    loc = [str(part) for part in error["loc"]]
    # An aliased field is located by the alias that matched (`OPA_URL`): name the field.
    field = loc[0].lower().removeprefix(ENV_PREFIX.lower()) if loc else "?"
    # A nested setting (`upstreams.crm.url`) has no environment variable: name its TOML key.
    key = ".".join(loc) if len(loc) > 1 else ENV_PREFIX + field.upper()
    if field in {"database_url", "redis_url", "opa_url"}:
        key = f"{field.upper()} (or {ENV_PREFIX}{field.upper()})"
    value = error.get("input")
    if field in {"database_url", "redis_url", "opa_url"} and isinstance(value, str):
        value = redact_url(value)
    allowed = str(error["msg"]).removeprefix("Value error, ").rstrip(".")
    ctx = error.get("ctx") or {}
    if "expected" in ctx:
        allowed = f"expected {ctx['expected']}"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown setting. Remove it or check its spelling (see `bastion config show`)."
    return f"{key}={value!r}: {allowed}."


def load_settings(**overrides: Any) -> Settings:
    """Read the settings once; raise ConfigError naming every bad key."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [_describe_error(err) for err in exc.errors()]
        raise ConfigError("invalid settings: " + "; ".join(lines)) from None
    except SettingsError as exc:
        # A list or table setting from the environment that is not JSON.
        found = re.search(r'field "([a-z0-9_]+)"', str(exc))
        key = f"{ENV_PREFIX}{found[1].upper()}" if found else "an environment variable"
        raise ConfigError(
            f"invalid settings: {key} is not JSON: list and table settings are given in the "
            f"environment as JSON, for example {ENV_PREFIX}TRUSTED_PROXIES='[\"10.0.0.0/8\"]'"
        ) from None
