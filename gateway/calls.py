"""The per-request path every MCP call takes through the gateway.

    principal ─► policy decision ─► rate limit ─► [caller context] ─► upstream
                                                               │
                      audit event (committed) ◄── metrics ◄── result

A denial, a rate limit or an unknown name ends the path before the upstream sees
anything. Every decision and call is audited before the answer leaves. Errors are
`CallError`s carrying a JSON-RPC code, a message that says what to do, and (for rate
limits) the seconds to wait, so both the fast path and the SDK path answer alike.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR
from prometheus_client import Counter, Gauge, Histogram

from bastion.caller import META_KEY, CallerContext, Obligations, sign_caller
from bastion.metrics import REGISTRY
from gateway.argument_manifest import ArgumentManifest
from gateway.argument_schema import ArgumentSchemas
from gateway.audit import AuditEvent, AuditWriter, digest_arguments
from gateway.audit import Decision as AuditDecision
from gateway.audit.refusals import RefusalRecorder
from gateway.auth.principal import Principal
from gateway.catalog import Entry, View
from gateway.policy import (
    Context,
    Decision,
    PolicyEngine,
    PolicyInput,
    Resource,
    current_minute,
    filter_allowed,
    filter_tools,
)
from gateway.policy import Principal as PolicyPrincipal
from gateway.ratelimit import RATE_LIMITED_CODE, RateLimiter, RateObligation, RateVerdict, rate_limit_error
from gateway.upstreams.connection import NOT_CONNECTED, UpstreamConnection
from gateway.upstreams.manager import UpstreamManager

__all__ = ["ROUND_TRIP_FIELDS", "CallContext", "CallError", "Gateway"]

logger = logging.getLogger(__name__)

CALLS = Counter(
    "bastion_gateway_calls", "Calls through the gateway", ["upstream", "tool", "outcome"], registry=REGISTRY
)
CALL_SECONDS = Histogram(
    "bastion_gateway_call_seconds",
    "Latency of calls through the gateway, upstream included",
    ["upstream", "tool"],
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# Label children resolved once: `.labels()` costs more than the update itself. Bounded all
# the same (reads are labelled by URI template, but a catalog may be large).
_CHILDREN_MAX = 4096
_children: dict[tuple[object, ...], Any] = {}


def _child(metric: Counter | Histogram, *labels: str) -> Any:
    key = (id(metric), *labels)  # the metrics are module-level: their ids never change
    child = _children.get(key)
    if child is None:
        if len(_children) >= _CHILDREN_MAX:
            _children.clear()
        child = _children[key] = metric.labels(*labels)
    return child


UPSTREAM_WAITING = Gauge(
    "bastion_gateway_upstream_waiting",
    "Calls waiting for a free slot of an upstream with max_concurrency",
    ["upstream"],
    registry=REGISTRY,
)

# JSON-RPC error codes the gateway answers with (implementation-defined band).
DENIED = -32003
RATE_LIMITED = RATE_LIMITED_CODE
UPSTREAM_UNAVAILABLE = NOT_CONNECTED
INVALID_PARAMS = -32602
RESOURCE_NOT_FOUND = INVALID_PARAMS  # SEP-2164: invalid params, with `data.uri`
CALLER_TTL = 60.0
# What a 2026-07-28 client's retry of a multi-round-trip call adds (SEP-2322): passed through.
ROUND_TRIP_FIELDS = ("inputResponses", "requestState")

ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]


class CallError(Exception):
    """A call the gateway refused or could not complete; becomes a JSON-RPC error."""

    def __init__(
        self, code: int, message: str, *, retry_after: float | None = None, data: Any = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.data = data

    def to_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None and not isinstance(self.data, dict):
            error["data"] = self.data  # an upstream's own data passes through as it was
            return error
        data = dict(self.data or {})
        if self.retry_after is not None:
            data["retry_after"] = round(self.retry_after, 3)
        if data:
            error["data"] = data
        return error


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who asks, through which view, from where."""

    principal: Principal
    view: View
    client_address: str | None = None
    request_id: str | None = None
    approval: str = "none"
    modern: bool = False  # a 2026-07-28 client: served over an upstream's 2026-07-28 connection
    # A handshake-era client the upstream may ask back mid-call (elicitation, sampling, roots,
    # log lines): its calls stay on the upstream's session, never on the direct path.
    interactive: bool = False
    # Closes this request's SSE stream to the client (which resumes with Last-Event-ID): an
    # HTTP upstream that closes its stream mid-call has the client's closed too.
    close_stream: Callable[[], Awaitable[None]] | None = None
    # `time.perf_counter()` when the request reached the gateway (0: not known).
    arrived: float = 0.0


class Gateway:
    """The gateway's runtime: upstreams, views, policy, limits, audit, signing."""

    def __init__(
        self,
        *,
        upstreams: UpstreamManager,
        policy: PolicyEngine,
        limiter: RateLimiter,
        audit: AuditWriter,
        instance_key: bytes,
        refusal_window: float = 60.0,
    ) -> None:
        """`refusal_window`: see `RefusalRecorder` (refusals before any decision)."""
        self.upstreams = upstreams
        self.policy = policy
        self._arguments = ArgumentManifest.from_data(policy.loaded_data())
        self._arguments_revision = policy.revision
        self.limiter = limiter
        self.audit = audit
        # Refusals before any decision (credentials, the principal's own bucket): audited
        # once per source and window, the rest counted, so a flood is not a flood of writes.
        self.refusals = RefusalRecorder(audit, window=refusal_window)
        self.instance_key = instance_key
        self._signed: dict[tuple[Any, ...], tuple[dict[str, Any], float]] = {}
        self._principals: dict[Principal, PolicyPrincipal] = {}
        self.schemas = ArgumentSchemas()

    # -- decisions ----------------------------------------------------------------

    def _principal(self, principal: Principal) -> PolicyPrincipal:
        cached = self._principals.get(principal)
        if cached is None:
            if len(self._principals) > 10_000:
                self._principals.clear()
            cached = PolicyPrincipal(
                principal.subject, principal.tenant, principal.roles, principal.scopes, principal.auth_method
            )
            self._principals[principal] = cached
        return cached

    def _context(self, ctx: CallContext) -> Context:
        return Context(current_minute(), ctx.client_address, ctx.approval)

    async def decide(self, ctx: CallContext, action: str, resource: Resource) -> Decision:
        policy_input = PolicyInput(self._principal(ctx.principal), action, resource, self._context(ctx))  # type: ignore[arg-type]
        return await self.policy.decide(policy_input)

    async def visible_tools(self, ctx: CallContext) -> list[dict[str, Any]]:
        """The view's tools this principal may see, for its `tools/list` (audited)."""
        allowed = await self.allowed_tools(ctx)
        await self._audit_listing(ctx, "tools/list", len(allowed), len(ctx.view.tools), "tools")
        return allowed

    async def allowed_tools(self, ctx: CallContext) -> list[dict[str, Any]]:
        """The view's tools this principal may see: one `tools/list` decision per tool."""
        allowed = await filter_tools(
            self.policy,
            self._principal(ctx.principal),
            self._context(ctx),
            list(ctx.view.tools.values()),
            lambda e: self._tool_resource(e, None),
        )
        return [entry.definition for entry in allowed]

    async def visible_prompts(self, ctx: CallContext) -> list[dict[str, Any]]:
        """The view's prompts this principal may get, for its `prompts/list` (audited)."""
        allowed = await self.allowed_prompts(ctx)
        await self._audit_listing(ctx, "prompts/list", len(allowed), len(ctx.view.prompts), "prompts")
        return allowed

    async def allowed_prompts(self, ctx: CallContext) -> list[dict[str, Any]]:
        """The view's prompts this principal may get: one `prompts/get` decision per prompt."""
        allowed = await filter_allowed(
            self.policy,
            self._principal(ctx.principal),
            self._context(ctx),
            "prompts/get",
            list(ctx.view.prompts.values()),
            self._prompt_resource,
        )
        return [entry.definition for entry in allowed]

    async def record(
        self,
        ctx: CallContext,
        action: str,
        upstream: str | None,
        target: str,
        decision: AuditDecision,
        reasons: tuple[str, ...],
        started: float,
        outcome: str,
    ) -> None:
        """Audit a decision that forwards no request of its own (a listen stream's wish to
        hear of a resource's updates)."""
        await self._audit(ctx, action, upstream, target, None, decision, reasons, started, outcome)

    async def _audit_listing(
        self, ctx: CallContext, action: str, shown: int, offered: int, what: str
    ) -> None:
        """One event per listing, its reason saying how much of the view the caller may see."""
        reason = f"{shown} of {offered} {what}"
        await self._audit(ctx, action, None, None, None, "allow", (reason,), 0.0, "ok")

    def arguments(self) -> ArgumentManifest:
        """The argument manifest of the policy in force (re-read when the policy reloads)."""
        revision = self.policy.revision
        if revision != self._arguments_revision:
            self._arguments = ArgumentManifest.from_data(self.policy.loaded_data())
            self._arguments_revision = revision
        return self._arguments

    def _tool_resource(self, entry: Entry, arguments: Mapping[str, Any] | None) -> Resource:
        # Policy sees the arguments its rules read; the audit digest covers them all.
        return Resource(
            upstream=entry.upstream,
            tool=entry.name,
            name=entry.exposed,
            arguments=self.arguments().reduce(entry.upstream, entry.name, dict(arguments or {})),
            annotations=entry.definition.get("annotations") or {},
        )

    @staticmethod
    def _prompt_resource(entry: Entry, arguments: Mapping[str, Any] | None = None) -> Resource:
        return Resource(
            upstream=entry.upstream, prompt=entry.name, name=entry.exposed, arguments=dict(arguments or {})
        )

    # -- calls --------------------------------------------------------------------

    async def call_tool(
        self,
        ctx: CallContext,
        exposed: str,
        arguments: Mapping[str, Any] | None,
        meta: Mapping[str, Any] | None = None,
        on_progress: ProgressFn | None = None,
        rounds: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Decide, limit, forward and audit one `tools/call`; return the upstream's result.

        `rounds`: a 2026-07-28 client's `inputResponses` and `requestState`, passed through.
        """
        started = time.perf_counter()
        entry = ctx.view.tools.get(exposed)
        upstream, target = (entry.upstream, entry.name) if entry is not None else (None, exposed)
        digest = await self._digest(ctx, "tools/call", upstream, target, arguments, started, exposed)
        if entry is None:
            await self.refuse_unknown(
                ctx,
                "tools/call",
                exposed,
                digest,
                started,
                f"unknown tool {exposed!r}: call tools/list for the tools you may use",
            )
        resource = self._tool_resource(entry, arguments)
        params: dict[str, Any] = {**(rounds or {}), "name": entry.name, "arguments": dict(arguments or {})}
        return await self._forward(
            ctx,
            "tools/call",
            "tools/call",
            entry.upstream,
            entry.name,
            resource,
            params,
            meta,
            on_progress,
            digest=digest,
            checked=entry,
        )

    async def get_prompt(
        self,
        ctx: CallContext,
        exposed: str,
        arguments: Mapping[str, Any] | None,
        meta: Mapping[str, Any] | None,
        rounds: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        entry = ctx.view.prompts.get(exposed)
        if entry is None:
            started = time.perf_counter()
            digest = await self._digest(ctx, "prompts/get", None, exposed, arguments, started, exposed)
            await self.refuse_unknown(
                ctx,
                "prompts/get",
                exposed,
                digest,
                started,
                f"unknown prompt {exposed!r}: call prompts/list for the prompts you may use",
            )
        resource = self._prompt_resource(entry, arguments)
        params: dict[str, Any] = {**(rounds or {}), "name": entry.name, "arguments": dict(arguments or {})}
        return await self._forward(
            ctx, "prompts/get", "prompts/get", entry.upstream, entry.name, resource, params, meta, None
        )

    async def read_resource(
        self,
        ctx: CallContext,
        uri: str,
        meta: Mapping[str, Any] | None,
        rounds: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        upstream = ctx.view.resource_upstream(uri)
        if upstream is None:
            await self.refuse_unknown(
                ctx,
                "resources/read",
                uri,
                None,
                time.perf_counter(),
                f"unknown resource {uri!r}: call resources/list or resources/templates/list",
                code=RESOURCE_NOT_FOUND,
                data={"uri": uri},
            )
        resource = Resource(upstream=upstream, uri=uri)
        params = {**(rounds or {}), "uri": uri}
        return await self._forward(
            ctx,
            "resources/read",
            "resources/read",
            upstream,
            uri,
            resource,
            params,
            meta,
            None,
            label=ctx.view.resource_label(uri),
        )

    async def forward_raw(
        self,
        ctx: CallContext,
        method: str,
        action: str,
        resource: Resource,
        params: dict[str, Any],
        meta: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Forward `method` decided as `action` on `resource` (completion, subscribe), audited.

        `meta`: the client's `_meta` (a 2026-07-28 client's envelope travels with it)."""
        assert resource.upstream is not None
        target = resource.uri or resource.prompt or resource.tool or method
        # A templated URI is one metric series per template, however many URIs a client tries.
        label = ctx.view.resource_label(resource.uri) if resource.uri else None
        return await self._forward(
            ctx, action, method, resource.upstream, target, resource, params, meta, None, label=label
        )

    def prompt_resource(self, entry: Entry) -> Resource:
        return self._prompt_resource(entry)

    async def _digest(
        self,
        ctx: CallContext,
        action: str,
        upstream: str | None,
        target: str,
        arguments: Mapping[str, Any] | None,
        started: float,
        shown: str,
    ) -> str:
        """The arguments' audit digest; arguments it cannot be taken of are refused, audited
        (`shown`: the name the client used)."""
        try:
            return digest_arguments(dict(arguments or {}))
        except ValueError as exc:
            reasons = (f"arguments refused: {exc}",)
            await self._audit(
                ctx, action, upstream, target, None, "error", reasons, started, "invalid_request"
            )
            raise CallError(
                INVALID_PARAMS,
                f"the arguments of {shown!r} cannot be handled ({exc.__cause__ or exc}): nest them "
                "fewer than 255 levels deep and keep integers within 64 bits",
            ) from None

    async def refuse_unknown(
        self,
        ctx: CallContext,
        action: str,
        target: str,
        digest: str | None,
        started: float,
        message: str,
        *,
        code: int = INVALID_PARAMS,
        data: Any = None,
    ) -> NoReturn:
        """Audit and refuse a request for something the caller's view does not have: the
        message's part before the colon (`unknown tool 'x'`) is the event's reason. It takes
        a token from the principal's bucket, as a call does (no tool, so no tool bucket), and
        is refused before any decision when there is none (`spend_token`)."""
        await self.spend_token(ctx, action, target)
        reason = message.split(" '", 1)[0]
        await self._audit(ctx, action, None, target, digest, "error", (reason,), started, "invalid_request")
        raise CallError(code, message, data=data)

    async def spend_token(self, ctx: CallContext, action: str, target: str | None = None) -> None:
        """Take a token from the principal's bucket for a request the gateway answers itself
        (nothing decided); refused as a call is, and audited as `rate_limit_refused` says."""
        verdict = await self.limiter.check(ctx.principal, None)
        if not verdict.allowed:
            await self.rate_limit_refused(ctx, action, verdict, target)
            raise _rate_limited(verdict)

    async def rate_limit_refused(
        self, ctx: CallContext, action: str, verdict: RateVerdict, target: str | None = None
    ) -> None:
        """Audit `action` (on `target`, when it names one), refused by the principal's own
        bucket before any decision: one event per principal and window, the others counted
        into the next (`RefusalRecorder`)."""
        latency = (time.perf_counter() - ctx.arrived) * 1000 if ctx.arrived else 0.0
        principal = ctx.principal
        await self.refusals.refused(
            ("rate_limited", principal.tenant, principal.subject),
            AuditEvent(
                time=datetime.now(UTC) - timedelta(milliseconds=latency),
                principal=principal,
                action=action,
                tool=target,
                decision="deny",
                reasons=(f"rate limit exceeded ({verdict.limit})",),
                latency_ms=latency,
                outcome="rate_limited",
                request_id=ctx.request_id,
                client_address=ctx.client_address,
            ),
        )

    async def _forward(
        self,
        ctx: CallContext,
        action: str,
        method: str,
        upstream: str,
        target: str,
        resource: Resource,
        params: dict[str, Any],
        meta: Mapping[str, Any] | None,
        on_progress: ProgressFn | None,
        digest: str | None = None,
        checked: Entry | None = None,
        label: str | None = None,
    ) -> dict[str, Any]:
        """Decide, limit, check `checked`'s arguments against its schema, send, audit.

        `label`: what metrics call the target (default: `target`).
        """
        started = time.perf_counter()
        label = label or target
        digest = digest or digest_arguments(dict(resource.arguments or {}))
        decision = await self.decide(ctx, action, resource)
        if not decision.allow:
            reasons = decision.reasons or ("no rule allows it",)
            await self._audit(ctx, action, upstream, target, digest, "deny", reasons, started, "denied")
            _child(CALLS, upstream, label, "denied").inc()
            raise CallError(
                DENIED,
                f"{action} {resource.name or target!r} denied by policy: {'; '.join(reasons)}. "
                "Access comes from the policy's role and subject grants: ask an administrator "
                "(docs/policy.md)",
                data={"reasons": list(reasons)},
            )
        if decision.obligations.require_approval and ctx.approval != "approved":
            reasons = ("approval required: a reviewer must approve this call first",)
            await self._audit(ctx, action, upstream, target, digest, "deny", reasons, started, "held")
            _child(CALLS, upstream, label, "held").inc()
            raise CallError(
                DENIED,
                f"{action} {resource.name or target!r} needs approval before it runs",
                data={"reasons": list(reasons)},
            )
        rate = decision.obligations.rate
        # Buckets are per upstream and tool, named as policy names them: the same tool reached
        # through two endpoints (or two upstreams' tools of one name) never share or split one.
        verdict = await self.limiter.check(ctx.principal, f"{upstream}/{target}", rate=_rate(rate))
        if not verdict.allowed:
            reasons = (f"rate limit exceeded ({verdict.limit})",)
            await self._audit(ctx, action, upstream, target, digest, "deny", reasons, started, "rate_limited")
            _child(CALLS, upstream, label, "rate_limited").inc()
            raise _rate_limited(verdict)
        if checked is not None:
            schema = checked.definition.get("inputSchema")
            problem = self.schemas.problem(upstream, target, schema, params.get("arguments") or {})
            if problem is not None:
                reasons = (f"arguments do not match the tool's input schema: {problem}",)
                await self._audit(
                    ctx, action, upstream, target, digest, "allow", reasons, started, "invalid_request"
                )
                _child(CALLS, upstream, label, "invalid_request").inc()
                # A tool error, not a protocol error (MCP: the model reads it and corrects itself).
                text = (
                    f"invalid arguments for tool {checked.exposed!r}: {problem}; "
                    "see its inputSchema in tools/list"
                )
                return {"content": [{"type": "text", "text": text}], "isError": True}
        connection = self.upstreams.connection(upstream, modern=ctx.modern)
        if connection is None:
            reasons = (f"upstream {upstream!r} is unavailable",)
            await self._audit(
                ctx, action, upstream, target, digest, "allow", reasons, started, "upstream_error"
            )
            raise CallError(
                UPSTREAM_UNAVAILABLE, f"upstream {upstream!r} is not connected right now; retry shortly"
            )
        out_meta = self._outgoing_meta(ctx, connection.spec.builtin, decision, meta)
        if out_meta:
            params = {**params, "_meta": out_meta}
        # A 2026-07-28 connection carries the client's own envelope (its capabilities decide
        # what the upstream may ask of it).
        envelope = (
            {k: v for k, v in meta.items() if k.startswith(_ENVELOPE)} if meta and connection.modern else None
        )
        outcome = "ok"
        try:
            result = await self._send(
                connection,
                upstream,
                method,
                params,
                on_progress=on_progress,
                envelope=envelope,
                interactive=ctx.interactive,
                on_stream_closed=ctx.close_stream,
            )
            if result.get("isError"):
                outcome = "tool_error"
                if checked is not None:
                    _name_as_exposed(result, checked)
            elif result.get("resultType") == "input_required":
                outcome = "input_required"
            return result
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except MCPError as exc:
            outcome = "upstream_error"
            # The upstream's own code and data pass through (clients act on them); the
            # message names the upstream.
            raise CallError(
                exc.error.code, f"upstream {upstream!r}: {exc.error.message}", data=exc.error.data
            ) from None
        except Exception as exc:
            # The request could not be sent at all (a defect, or input no wire format takes):
            # the call failed, and is audited so.
            outcome = "upstream_error"
            logger.exception("%s to upstream %s failed in the gateway", method, upstream)
            raise CallError(
                INTERNAL_ERROR,
                f"the gateway could not send {method} to upstream {upstream!r} "
                f"({type(exc).__name__}: {exc}); its log has the details",
            ) from None
        finally:
            # Counted while the audit event commits: not on the answer's path.
            asyncio.get_running_loop().call_soon(
                _count_call, upstream, label, outcome, time.perf_counter() - started
            )
            await self._audit(
                ctx, action, upstream, target, digest, "allow", decision.reasons, started, outcome
            )

    async def _send(
        self,
        connection: UpstreamConnection,
        upstream: str,
        method: str,
        params: dict[str, Any],
        **options: Any,
    ) -> dict[str, Any]:
        """`connection.request`, in one of the upstream's slots when it has a `max_concurrency`.

        Every call is counted on the upstream's back channels while it runs, so that a
        request the upstream sends back is relayed only when one call can have caused it.
        """
        back = self.upstreams.back
        slots = self.upstreams.slots(upstream)
        ticket: int | None = None
        if slots is not None:
            if slots.free():
                ticket = await slots.acquire()
            else:
                waiting = UPSTREAM_WAITING.labels(upstream)
                waiting.inc()
                try:
                    ticket = await slots.acquire()
                finally:
                    waiting.dec()
                # The upstream may have restarted while the call waited: its new connection.
                connection = self.upstreams.connection(upstream, modern=connection.modern) or connection
        back.sending(upstream)
        try:
            return await connection.request(method, params, **options)
        finally:
            back.sent(upstream)
            if slots is not None and ticket is not None:
                slots.release(ticket)

    def _outgoing_meta(
        self, ctx: CallContext, builtin: bool, decision: Decision, meta: Mapping[str, Any] | None
    ) -> dict[str, Any] | None:
        # The client's progress token and protocol envelope belong to its hop, not the upstream's:
        # the upstream connection sets its own.
        out = (
            {k: v for k, v in meta.items() if k not in _HOP_META and not k.startswith(_ENVELOPE)}
            if meta
            else {}
        )
        if builtin:
            out[META_KEY] = self._caller_context(ctx.principal, decision)
        return out or None

    def _caller_context(self, principal: Principal, decision: Decision) -> dict[str, Any]:
        """A signed caller context, reused while it has over half its lifetime left."""
        ob = decision.obligations
        key = (
            principal.subject,
            principal.tenant,
            principal.roles,
            ob.allowed_collections,
            ob.allowed_datasets,
            ob.row_limit,
            ob.redact,
        )
        now = time.time()
        cached = self._signed.get(key)
        if cached is not None and cached[1] - now > CALLER_TTL / 2:
            return cached[0]
        context = CallerContext.expiring(
            subject=principal.subject,
            tenant=principal.tenant,
            roles=principal.roles,
            obligations=Obligations(
                allowed_collections=ob.allowed_collections,
                allowed_datasets=ob.allowed_datasets,
                row_limit=ob.row_limit,
                redact=ob.redact,
            ),
            ttl=CALLER_TTL,
            now=now,
        )
        wire = sign_caller(context, self.instance_key)
        if len(self._signed) > 10_000:
            self._signed.clear()
        self._signed[key] = (wire, now + CALLER_TTL)
        return wire

    async def _audit(
        self,
        ctx: CallContext,
        action: str,
        upstream: str | None,
        target: str | None,
        digest: str | None,
        decision: AuditDecision,
        reasons: tuple[str, ...],
        started: float,
        outcome: str,
    ) -> None:
        latency = (time.perf_counter() - started) * 1000 if started else 0.0
        await self.audit.write(
            AuditEvent(
                time=datetime.now(UTC) - timedelta(milliseconds=latency),  # when the call arrived
                principal=ctx.principal,
                action=action,
                upstream=upstream,
                tool=target,
                argument_digest=digest,
                decision=decision,
                reasons=tuple(reasons),
                latency_ms=latency,
                outcome=outcome,
                request_id=ctx.request_id,
                client_address=ctx.client_address,
            )
        )


_HOP_META = frozenset({META_KEY, "progressToken"})
_ENVELOPE = "io.modelcontextprotocol/"


def _count_call(upstream: str, label: str, outcome: str, seconds: float) -> None:
    _child(CALLS, upstream, label, outcome).inc()
    _child(CALL_SECONDS, upstream, label).observe(seconds)


def _rate_limited(verdict: RateVerdict) -> CallError:
    """The error of a call a rate limit refused (HTTP 429 with `Retry-After` where it can be)."""
    return CallError(
        RATE_LIMITED,
        rate_limit_error(verdict)["message"],
        data={"limit": verdict.limit, "scope": verdict.scope},
        retry_after=verdict.retry_after,
    )


def _rate(rate: Any) -> RateObligation | None:
    if rate is None or isinstance(rate, RateObligation):
        return rate
    return RateObligation(per_minute=float(rate.per_minute), burst=int(rate.burst))


def _name_as_exposed(result: dict[str, Any], entry: Entry) -> None:
    """A tool error worded by an SDK server ("Error executing tool search: ...") names the
    tool by the exposed name its client called (`retrieval_search`), not the upstream's."""
    prefix = f"Error executing tool {entry.name}:"
    content = result.get("content")
    if entry.name == entry.exposed or not isinstance(content, list) or not content:
        return
    first = content[0]
    if isinstance(first, dict) and isinstance(text := first.get("text"), str) and text.startswith(prefix):
        content[0] = {**first, "text": f"Error executing tool {entry.exposed}:{text[len(prefix) :]}"}
