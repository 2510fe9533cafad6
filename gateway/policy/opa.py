"""A client for a real OPA server over its REST data API.

`POST {url}/v1/data/<decision_path>` with `{"input": ...}` answers `{"result": <decision>}`,
or `{}` when the document is undefined. Every failure (connection refused, a bad URL, a slow
answer past the deadline, an HTTP error, a body that is not a decision) denies the request
with a reason naming OPA and what went wrong. Clients read that reason, so it never holds
the URL; the log and `status()` add the URL (without user or password) and the cause.

OPA loads and swaps its policy on its own (bundles, `opa run --watch`, the policy API).
With `poll_interval`, the engine looks every so many seconds at what OPA holds (its
modules, `GET /v1/policies`, and the data under the decision's top package,
`GET /v1/data/<package>`) and moves `revision` on when that changed: the decision cache
empties and the gateway tells clients whose lists changed, as for the embedded engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import orjson

from gateway.policy import metrics
from gateway.policy.engine import DECISION_PATH, UNDEFINED, PolicyEngine
from gateway.policy.errors import PolicyError, PolicyEvaluationError
from gateway.policy.model import Decision, PolicyInput, PolicyStatus
from gateway.policy.result import decision_from_result

__all__ = ["OpaRestEngine"]

logger = logging.getLogger(__name__)

_JSON = {"content-type": "application/json"}


class OpaRestEngine(PolicyEngine):
    """Decisions from an OPA server at `url` (e.g. a sidecar at http://127.0.0.1:8181)."""

    name = "opa"

    def __init__(
        self,
        url: str,
        *,
        decision_path: str = DECISION_PATH,
        timeout: float = 1.0,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 64,
        transport: httpx.AsyncBaseTransport | None = None,
        poll_interval: float | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.public_url = _public_url(self.url)
        if not url.startswith(("http://", "https://")):
            raise ValueError(
                f"OPA_URL={self.public_url!r}: expected http:// or https:// followed by host and port"
            )
        self.decision_path = decision_path.strip("/")
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers=dict(headers or {}),
            transport=transport,
        )
        self._error: str | None = None
        self._checked_at: datetime | None = None
        self.poll_interval = poll_interval
        self._revision = 0
        self._seen: bytes | None = None  # the fingerprint of what OPA held at the last look
        self._follower: asyncio.Task[None] | None = None

    def _data_url(self, path: str) -> str:
        return f"{self.url}/v1/data/{path.strip('/').replace('.', '/')}"

    def _failure(self, what: str, cause: str = "") -> _OpaError:
        detail = f" ({cause})" if cause else ""
        return _OpaError(f"OPA at {self.public_url} {what}{detail}", f"OPA {what}")

    async def _post(self, path: str, body: bytes) -> Any:
        try:
            with anyio.fail_after(self.timeout):
                response = await self._client.post(self._data_url(path), content=body, headers=_JSON)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise self._failure(f"did not answer within {self.timeout:g}s") from exc
        except Exception as exc:  # not only httpx.HTTPError: InvalidURL, OverflowError for port 99999
            raise self._failure("is unreachable", _cause(exc)) from exc
        if response.status_code != 200:
            message = _message(response)
            what = f"answered HTTP {response.status_code} for {path}"
            # OPA's own error message is policy-level; any other body (a proxy's page) stays in the log.
            if message is not None:
                raise self._failure(f"{what}: {message}")
            raise self._failure(what, response.text[:200] or "empty body")
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise self._failure("answered with a body that is not JSON") from exc
        if not isinstance(answer, dict):
            raise self._failure("answered with JSON that is not an object")
        return answer.get("result", UNDEFINED)

    def _record(self, error: str | None) -> None:
        if error != self._error:
            if error:
                logger.warning("policy decisions from OPA failing: %s", error)
            else:
                logger.info("OPA at %s answers again", self.public_url)
        self._error = error
        self._checked_at = datetime.now(UTC)
        metrics.POLICY_OK.set(0 if error else 1)

    async def decide(self, input: PolicyInput) -> Decision:
        started = time.perf_counter()
        try:
            body = b'{"input":' + input.to_json() + b"}"
            value = await self._post(self.decision_path, body)
            if value is UNDEFINED:
                raise self._failure(
                    f"has no document at {self.decision_path}: load Bastion's policies/ folder into OPA"
                )
            decision = decision_from_result(value, f"OPA ({self.decision_path})")
            self._record(None)
        except _OpaError as exc:
            self._record(exc.message)
            decision = Decision.error(exc.public)
        except PolicyError as exc:  # an answer that is not a decision
            self._record(f"{exc.message} (OPA at {self.public_url})")
            decision = Decision.error(exc.message)
        except (TypeError, ValueError) as exc:  # orjson: the input is not JSON
            decision = Decision.error(f"the request cannot be given to policy ({exc})")
        metrics.observe_evaluation(self.name, decision, time.perf_counter() - started)
        return decision

    async def decide_many(self, inputs: Sequence[PolicyInput]) -> list[Decision]:
        # OPA's open-source API has no batch endpoint: send them side by side on the pool.
        return list(await asyncio.gather(*(self.decide(item) for item in inputs)))

    async def query(self, path: str, input: Mapping[str, Any] | None = None) -> Any:
        """The value at `data.<path>` for `input`, or `UNDEFINED`."""
        try:
            body = orjson.dumps({"input": input if input is not None else {}})
        except orjson.JSONEncodeError as exc:
            raise PolicyEvaluationError(f"the input is not JSON ({exc})") from exc
        return await self._post(path, body)

    async def start(self) -> None:
        """Probe OPA's /health once so `/readyz` knows early, and start following its
        policy; never raises."""
        try:
            with anyio.fail_after(self.timeout):
                response = await self._client.get(f"{self.url}/health")
        except (TimeoutError, httpx.TimeoutException):
            self._record(self._failure(f"did not answer /health within {self.timeout:g}s").message)
        except Exception as exc:  # as in _post: a bad URL must deny, never crash the gateway's start
            self._record(self._failure("is unreachable", _cause(exc)).message)
        else:
            status = response.status_code
            self._record(
                None if status == 200 else self._failure(f"answered HTTP {status} on /health").message
            )
        if self.poll_interval and self._follower is None:
            self._seen = await self._fingerprint()
            self._follower = asyncio.get_running_loop().create_task(
                self._follow(self.poll_interval), name="opa-policy-follow"
            )

    @property
    def revision(self) -> int:
        return self._revision

    async def _fingerprint(self) -> bytes | None:
        """A digest of OPA's modules and of the data under the decision's top package, or
        None when OPA does not say (unreachable, an error): no change is read from that."""
        package = self.decision_path.split("/", 1)[0]
        try:
            with anyio.fail_after(self.timeout):
                modules = await self._client.get(f"{self.url}/v1/policies")
                data = await self._client.get(self._data_url(package))
            if modules.status_code != 200 or data.status_code != 200:
                return None
            listed = orjson.loads(modules.content).get("result") or []
            texts = sorted((str(m.get("id")), str(m.get("raw"))) for m in listed if isinstance(m, dict))
            held = [texts, orjson.loads(data.content).get("result")]
            return hashlib.sha256(orjson.dumps(held, option=orjson.OPT_SORT_KEYS)).digest()
        except Exception as exc:  # OPA's health is reported by decisions; this only looks
            logger.debug("could not read the policy OPA holds: %s", _cause(exc))
            return None

    async def _follow(self, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            current = await self._fingerprint()
            if current is None:
                continue
            if self._seen is not None and current != self._seen:
                self._revision += 1
                logger.info("the policy in OPA at %s changed (revision %d)", self.public_url, self._revision)
            self._seen = current

    async def close(self) -> None:
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        await self._client.aclose()

    def status(self) -> PolicyStatus:
        return PolicyStatus(
            ok=self._error is None,
            engine=self.name,
            error=self._error,
            loaded_at=self._checked_at,
            sources=(f"{self.public_url}/v1/data/{self.decision_path}",),
            revision=self._revision,
        )


class _OpaError(PolicyEvaluationError):
    """`message` (URL without credentials, cause) is for operators; `public` for clients."""

    def __init__(self, message: str, public: str) -> None:
        super().__init__(message)
        self.public = public


def _public_url(url: str) -> str:
    """`url` without user and password; never raises, whatever `url` holds."""
    head, sep, rest = url.partition("://")
    if not sep:
        head, rest = "", url
    netloc, slash, path = rest.partition("/")
    return f"{head}{sep}{netloc.rpartition('@')[2]}{slash}{path}"


def _cause(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return str(exc).strip() or type(exc).__name__


def _message(response: httpx.Response) -> str | None:
    """OPA's `message` from an error body, if it is OPA's."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return None
