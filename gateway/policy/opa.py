"""A client for a real OPA server over its REST data API.

`POST {url}/v1/data/<decision_path>` with `{"input": ...}` answers `{"result": <decision>}`,
or `{}` when the document is undefined. Every failure (connection refused, a slow answer
past the deadline, an HTTP error, a body that is not a decision) denies the request with a
reason naming OPA and what went wrong.
"""

from __future__ import annotations

import asyncio
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
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"OPA_URL={url!r}: expected http:// or https:// followed by host and port")
        self.url = url.rstrip("/")
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

    def _data_url(self, path: str) -> str:
        return f"{self.url}/v1/data/{path.strip('/').replace('.', '/')}"

    async def _post(self, path: str, body: bytes) -> Any:
        try:
            with anyio.fail_after(self.timeout):
                response = await self._client.post(self._data_url(path), content=body, headers=_JSON)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise PolicyEvaluationError(f"OPA at {self.url} did not answer within {self.timeout:g}s") from exc
        except httpx.HTTPError as exc:
            raise PolicyEvaluationError(
                f"cannot reach OPA at {self.url} ({exc or type(exc).__name__})"
            ) from exc
        if response.status_code != 200:
            raise PolicyEvaluationError(
                f"OPA at {self.url} answered HTTP {response.status_code} for {path}: {_message(response)}"
            )
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise PolicyEvaluationError(f"OPA at {self.url} answered with a body that is not JSON") from exc
        if not isinstance(answer, dict):
            raise PolicyEvaluationError(f"OPA at {self.url} answered with JSON that is not an object")
        return answer.get("result", UNDEFINED)

    def _record(self, error: str | None) -> None:
        if error != self._error:
            if error:
                logger.warning("policy decisions from OPA failing: %s", error)
            else:
                logger.info("OPA at %s answers again", self.url)
        self._error = error
        self._checked_at = datetime.now(UTC)
        metrics.POLICY_OK.set(0 if error else 1)

    async def decide(self, input: PolicyInput) -> Decision:
        started = time.perf_counter()
        try:
            body = b'{"input":' + input.to_json() + b"}"
            value = await self._post(self.decision_path, body)
            if value is UNDEFINED:
                raise PolicyEvaluationError(
                    f"OPA at {self.url} has no document at {self.decision_path}: "
                    "load Bastion's policies/ folder into OPA"
                )
            decision = decision_from_result(value, f"OPA at {self.url} ({self.decision_path})")
            self._record(None)
        except PolicyError as exc:
            self._record(exc.message)
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
        """Probe OPA's /health once so `/readyz` knows early; never raises."""
        try:
            with anyio.fail_after(self.timeout):
                response = await self._client.get(f"{self.url}/health")
            self._record(
                None if response.status_code == 200 else f"OPA /health answered HTTP {response.status_code}"
            )
        except (TimeoutError, httpx.HTTPError) as exc:
            self._record(f"cannot reach OPA at {self.url} ({exc or type(exc).__name__})")

    async def close(self) -> None:
        await self._client.aclose()

    def status(self) -> PolicyStatus:
        return PolicyStatus(
            ok=self._error is None,
            engine=self.name,
            error=self._error,
            loaded_at=self._checked_at,
            sources=(f"{self.url}/v1/data/{self.decision_path}",),
        )


def _message(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:200] or "(empty body)"
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return response.text[:200]
