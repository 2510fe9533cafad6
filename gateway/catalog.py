"""Views: what one endpoint (`/mcp` or a virtual server `/mcp/<name>`) exposes.

A view is rebuilt from the upstream catalogs whenever any of them changes. Tools and
prompts get exposed names from a `NameTable` (prefixed with the upstream, or kept as
they are on a virtual server made of exactly one upstream). Resource URIs are kept
as the upstream wrote them and routed by exact match, then by URI template; a
resource's or template's `name` only labels it, so it gets the same prefix (no table:
nothing is looked up by it) and a client can tell whose it is.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp.shared.inbound import X_MCP_HEADER_KEY
from mcp.shared.uri_template import InvalidUriTemplate, UriTemplate

from gateway.naming import NameTable
from gateway.upstreams.connection import Catalog

__all__ = ["Entry", "View", "ViewConfig", "build_view"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Entry:
    """One exposed tool or prompt: its exposed name, upstream, original name, definition."""

    exposed: str
    upstream: str
    name: str
    definition: dict[str, Any]
    # The tool's schema maps arguments to `Mcp-Param-*` headers, which the SDK validates.
    param_headers: bool = False


@dataclass(frozen=True)
class ViewConfig:
    """Which part of the catalog a view shows."""

    name: str  # "" for the main /mcp endpoint
    upstreams: frozenset[str] | None = None  # None: every upstream
    tool_globs: tuple[str, ...] = ()
    allow_loopback_test_principal: bool = False

    @property
    def prefixed(self) -> bool:
        # A virtual server of exactly one upstream keeps that upstream's own names.
        return not (self.upstreams is not None and len(self.upstreams) == 1 and not self.tool_globs)


@dataclass
class View:
    config: ViewConfig
    tools: dict[str, Entry] = field(default_factory=dict[str, Entry])
    prompts: dict[str, Entry] = field(default_factory=dict[str, Entry])
    resources: dict[str, str] = field(default_factory=dict[str, str])  # uri -> upstream
    resource_list: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    templates: list[tuple[TemplateMatcher, str, dict[str, Any]]] = field(
        default_factory=list[tuple["TemplateMatcher", str, dict[str, Any]]]
    )
    upstream_names: tuple[str, ...] = ()
    instructions: str | None = None

    def tool_definitions(self) -> list[dict[str, Any]]:
        return [entry.definition for entry in self.tools.values()]

    def prompt_definitions(self) -> list[dict[str, Any]]:
        return [entry.definition for entry in self.prompts.values()]

    def template_definitions(self) -> list[dict[str, Any]]:
        return [definition for _, _, definition in self.templates]

    def _template_for(self, uri: str) -> tuple[str, dict[str, Any]] | None:
        """The upstream and definition of the template `uri` matches: of several, the most
        specific (the most literal characters), so that `db://{schema}/{table}` takes
        `db://s/t` whoever else offers `db://{table}`. A completion names the template
        itself, which is found as written first."""
        best: tuple[int, str, dict[str, Any]] | None = None
        for matcher, upstream, definition in self.templates:
            if definition.get("uriTemplate") == uri:
                return upstream, definition
            if matcher.matches(uri) and (best is None or matcher.literal > best[0]):
                best = (matcher.literal, upstream, definition)
        return (best[1], best[2]) if best is not None else None

    def resource_upstream(self, uri: str) -> str | None:
        exact = self.resources.get(uri)
        if exact is not None:
            return exact
        found = self._template_for(uri)
        return found[0] if found is not None else None

    def resource_label(self, uri: str) -> str:
        """What metrics call a read of `uri`: the URI of a listed resource, else the URI
        template it matched, so that reads of templated URIs do not add a series each."""
        if uri in self.resources:
            return uri
        found = self._template_for(uri)
        return str(found[1].get("uriTemplate", uri)) if found is not None else uri


def _labelled(definition: dict[str, Any], upstream: str, prefixed: bool) -> dict[str, Any]:
    """A resource or template definition whose `name` says which upstream offers it."""
    name = definition.get("name")
    if not prefixed or not isinstance(name, str):
        return definition
    return {**definition, "name": f"{upstream}_{name}"}


class TemplateMatcher:
    """Which URIs an RFC 6570 URI template covers, as the SDK's own matcher reads it: `{var}`
    stops at `/`, `?` and `#`, `{+var}` does not, `{?q}` may be absent. A template the
    SDK cannot parse is matched loosely (each expression one or more characters), so an
    upstream's odd template still routes."""

    def __init__(self, template: str) -> None:
        parts = re.split(r"(\{[^}]*\})", template)
        self.literal = sum(len(p) for p in parts if not (p.startswith("{") and p.endswith("}")))
        try:
            self._template: UriTemplate | None = UriTemplate.parse(template)
            self._loose = None
        except InvalidUriTemplate:
            self._template = None
            regex = "".join(".+?" if p.startswith("{") and p.endswith("}") else re.escape(p) for p in parts)
            self._loose = re.compile(regex)

    def matches(self, uri: str) -> bool:
        if self._template is not None:
            return self._template.match(uri) is not None
        assert self._loose is not None
        return self._loose.fullmatch(uri) is not None


def _included(config: ViewConfig, upstream: str, exposed: str, original: str) -> bool:
    in_upstreams = config.upstreams is None or upstream in config.upstreams
    if not config.tool_globs:
        return in_upstreams
    by_glob = any(
        fnmatch.fnmatchcase(exposed, g) or fnmatch.fnmatchcase(original, g) for g in config.tool_globs
    )
    if config.upstreams is None:
        return by_glob
    return in_upstreams or by_glob


def build_view(config: ViewConfig, catalogs: Mapping[str, Catalog], names: NameTable | None = None) -> View:
    """Assemble a view; `names` keeps exposed names stable across rebuilds."""
    table = names if names is not None else NameTable(prefix=config.prefixed)
    view = View(config)
    used: list[str] = []
    for upstream in sorted(catalogs):
        if not config.prefixed and config.upstreams is not None and upstream not in config.upstreams:
            continue  # its names must not take the view's own upstream's plain names
        catalog = catalogs[upstream]
        # A whole upstream brings its prompts, resources and templates too; tool globs pick tools only.
        whole = upstream in config.upstreams if config.upstreams is not None else not config.tool_globs
        contributed = False
        for tool in catalog.tools:
            original = str(tool.get("name", ""))
            exposed = table.add(upstream, original)
            if _included(config, upstream, exposed, original):
                param_headers = X_MCP_HEADER_KEY in str(tool.get("inputSchema") or "")
                view.tools[exposed] = Entry(
                    exposed, upstream, original, {**tool, "name": exposed}, param_headers
                )
                contributed = True
        if not whole:
            if contributed:
                used.append(upstream)
            continue
        contributed = True
        for prompt in catalog.prompts:
            original = str(prompt.get("name", ""))
            exposed = table.add(upstream, original)
            view.prompts[exposed] = Entry(exposed, upstream, original, {**prompt, "name": exposed})
        for resource in catalog.resources:
            uri = str(resource.get("uri", ""))
            if uri in view.resources:
                logger.warning(
                    "resource %s is offered by %s and %s; using %s",
                    uri,
                    view.resources[uri],
                    upstream,
                    view.resources[uri],
                )
                continue
            view.resources[uri] = upstream
            view.resource_list.append(_labelled(resource, upstream, config.prefixed))
        for template in catalog.templates:
            uri_template = str(template.get("uriTemplate", ""))
            view.templates.append(
                (TemplateMatcher(uri_template), upstream, _labelled(template, upstream, config.prefixed))
            )
        used.append(upstream)
    view.upstream_names = tuple(used)
    view.instructions = _merge_instructions((u, catalogs[u].instructions) for u in used)
    return view


def _merge_instructions(items: Iterable[tuple[str, str | None]]) -> str | None:
    parts = [f"[{upstream}] {text.strip()}" for upstream, text in items if text]
    return "\n\n".join(parts) if parts else None
