"""`ServerSpec`: the one way a Bastion capability server is declared.

A server package exposes a module-level `spec` naming its tools, resources, prompts,
migrations and extra health checks. Nothing runs at import: `build_server` turns the
declaration into an `MCPServer`, and `serve` runs it over stdio or HTTP.

    spec = ServerSpec(name="retrieval", description="...", migrations=MIGRATIONS)

    @spec.tool()
    async def search(query: str, ctx: Context[ServerRuntime, Any]) -> list[Hit]:
        \"\"\"Search the caller's collections.\"\"\"
        runtime = ctx.request_context.lifespan_context
        caller = current_caller()
        ...
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, TypeVar, overload

from mcp.shared.uri_template import UriTemplate
from mcp.types import ToolAnnotations

from bastion.db.migrations import MigrationSet
from bastion.errors import ConfigError

if TYPE_CHECKING:
    from bastion.mcp.runtime import ServerRuntime

__all__ = [
    "Background",
    "HealthCheck",
    "PromptDef",
    "ResourceDef",
    "ServerSpec",
    "ToolDef",
    "bastion_version",
]

HealthCheck = Callable[["ServerRuntime"], Awaitable[dict[str, Any]]]
"""Extra checks a server adds to its health report, given the running runtime."""

Background = Callable[["ServerRuntime"], AbstractAsyncContextManager[None]]
"""Work a served process runs for its whole life (a queue worker): entered once the
runtime is open, before the first request; exited before the runtime closes."""

_FnT = TypeVar("_FnT", bound=Callable[..., Any])
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def bastion_version() -> str:
    try:
        return version("bastion")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def _require_async(fn: Callable[..., Any], what: str) -> None:
    if not inspect.iscoroutinefunction(fn):
        name = getattr(fn, "__qualname__", repr(fn))
        raise ConfigError(
            f"{what} {name} must be an `async def` function: servers share one event loop, and a "
            "blocking function would stall every other request. Move blocking work to "
            "anyio.to_thread.run_sync inside an async function."
        )


@dataclass(frozen=True)
class ToolDef:
    """One tool: an async function whose type hints and docstring become its schema."""

    fn: Callable[..., Awaitable[Any]]
    name: str | None = None
    title: str | None = None
    description: str | None = None
    annotations: ToolAnnotations | None = None
    structured_output: bool | None = None

    @property
    def tool_name(self) -> str:
        return self.name or self.fn.__name__


@dataclass(frozen=True)
class ResourceDef:
    """One resource or resource template (a URI with `{param}` parts)."""

    fn: Callable[..., Awaitable[Any]]
    uri: str
    name: str | None = None
    description: str | None = None
    mime_type: str | None = None
    # Template parameters that are opaque keys (a document id that may be a file path),
    # exempt from the SDK's checks against path traversal and absolute paths.
    opaque: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PromptDef:
    """One prompt: an async function returning messages."""

    fn: Callable[..., Awaitable[Any]]
    name: str | None = None
    description: str | None = None


@dataclass
class ServerSpec:
    """The declaration of one MCP capability server."""

    name: str
    description: str = ""
    version: str = field(default_factory=bastion_version)
    instructions: str | None = None
    tools: list[ToolDef] = field(default_factory=list[ToolDef])
    resources: list[ResourceDef] = field(default_factory=list[ResourceDef])
    prompts: list[PromptDef] = field(default_factory=list[PromptDef])
    migrations: MigrationSet | None = None
    health: HealthCheck | None = None
    background: Background | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(
                f"server name {self.name!r} must be lowercase letters, digits, '-' or '_' "
                f"(pattern {_NAME.pattern})"
            )
        if self.health is not None:
            _require_async(self.health, "health check")
        for tool in self.tools:
            _require_async(tool.fn, "tool")
        self._check_unique([t.tool_name for t in self.tools], "tool")

    def _check_unique(self, names: list[str], what: str) -> None:
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ConfigError(f"server {self.name!r} declares the {what} {name!r} twice")
            seen.add(name)

    # -- decorators -------------------------------------------------------------

    @overload
    def tool(self, fn: _FnT, /) -> _FnT: ...

    @overload
    def tool(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        structured_output: bool | None = None,
    ) -> Callable[[_FnT], _FnT]: ...

    def tool(
        self,
        fn: _FnT | None = None,
        /,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        structured_output: bool | None = None,
    ) -> _FnT | Callable[[_FnT], _FnT]:
        """Register an async function as a tool; works as `@spec.tool` and `@spec.tool(...)`."""

        def register(func: _FnT) -> _FnT:
            _require_async(func, "tool")
            tool = ToolDef(func, name, title, description, annotations, structured_output)
            self._check_unique([*(t.tool_name for t in self.tools), tool.tool_name], "tool")
            self.tools.append(tool)
            return func

        return register if fn is None else register(fn)

    def resource(
        self,
        uri: str,
        *,
        name: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
        opaque: Iterable[str] = (),
    ) -> Callable[[_FnT], _FnT]:
        """Register an async function as the resource (or template) at `uri`.

        `opaque`: template parameters that are keys the function looks up (and checks access
        to) itself, never paths it opens; the SDK's path checks would refuse a key such as
        `/srv/docs/a.md`, so they are skipped for these."""
        if callable(uri):
            raise ConfigError(
                "Did you forget the URI? Use @spec.resource('scheme://path') instead of @spec.resource"
            )

        def register(func: _FnT) -> _FnT:
            _require_async(func, "resource")
            unknown = set(opaque) - set(UriTemplate.parse(uri).variable_names)
            if unknown:
                raise ConfigError(f"opaque parameters {sorted(unknown)} are not parameters of {uri!r}")
            self.resources.append(ResourceDef(func, uri, name, description, mime_type, frozenset(opaque)))
            return func

        return register

    def prompt(self, *, name: str | None = None, description: str | None = None) -> Callable[[_FnT], _FnT]:
        """Register an async function as a prompt."""

        def register(func: _FnT) -> _FnT:
            _require_async(func, "prompt")
            self.prompts.append(PromptDef(func, name, description))
            return func

        return register
