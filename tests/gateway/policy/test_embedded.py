"""The embedded engine: decisions, failing closed, and reloading when files change."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from bastion.metrics import REGISTRY
from gateway.policy import UNDEFINED, EmbeddedRegoEngine, PolicyLoadError
from tests.gateway.policy.helpers import call, eventually


def _reload_errors() -> float:
    return REGISTRY.get_sample_value("bastion_policy_reload_errors_total") or 0.0


async def test_the_default_policy_decides_with_reasons_and_obligations() -> None:
    async with EmbeddedRegoEngine(reload_interval=None) as engine:
        denied = await engine.decide(call("viewer", "analytics", "query", sql="select 1"))
        allowed = await engine.decide(call("analyst", "analytics", "query", sql="select 1"))
    assert not denied.allow
    assert denied.reasons == ("deny: role viewer may not call analytics_query (rule viewers_read_only)",)
    assert allowed.allow
    assert allowed.obligations.row_limit == 10_000
    assert allowed.obligations.allowed_datasets == ()


async def test_status_reports_the_policy_in_force() -> None:
    engine = EmbeddedRegoEngine(reload_interval=None)
    status = engine.status()
    assert status.ok
    assert status.error is None
    assert status.engine == "embedded"
    assert status.loaded_at is not None
    assert "authz.rego" in status.sources
    assert status.to_dict()["revision"] == 1


async def test_an_invalid_policy_at_start_denies_everything_and_says_why(policy_dir: Path) -> None:
    (policy_dir / "authz.rego").write_text("package bastion.authz\n\ndecision := {\n")
    before = _reload_errors()
    engine = EmbeddedRegoEngine(policy_dir, reload_interval=None)
    decision = await engine.decide(call("admin", "system", "version"))
    assert not decision.allow
    assert decision.is_error
    assert "no valid policy is loaded" in decision.reason
    assert "authz.rego" in decision.reason
    assert not engine.status().ok
    assert _reload_errors() == before + 1
    with pytest.raises(PolicyLoadError, match=r"authz\.rego"):
        EmbeddedRegoEngine(policy_dir, reload_interval=None, strict=True)


async def test_a_policy_that_fails_while_evaluating_denies_with_the_error(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(
        "package bastion.authz\n\n"
        'decision := {"allow": true, "reasons": [], "obligations": {}} if {\n'
        '\tinput.principal.subject != "alice"\n'
        "}\n\n"
        'decision := {"allow": true, "reasons": [], "obligations": {}} if {\n'
        '\tinput.principal.subject == "alice"\n'
        '\tstartswith(input.principal.roles, "x")\n'
        "}\n"
    )
    engine = EmbeddedRegoEngine(tmp_path, reload_interval=None, strict=True)
    decision = await engine.decide(call("admin", "system", "version"))
    assert decision.is_error
    assert "startswith" in decision.reason


async def test_a_policy_without_a_decision_fails_to_load(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package other\n\nx := 1\n")
    with pytest.raises(PolicyLoadError, match=r"not a valid rule path|produced no decision"):
        EmbeddedRegoEngine(tmp_path, reload_interval=None, strict=True)


async def test_an_edited_policy_is_reloaded_by_the_watcher(policy_dir: Path) -> None:
    async with EmbeddedRegoEngine(policy_dir, reload_interval=0.02) as engine:
        assert not (await engine.decide(call("viewer", "analytics", "query"))).allow
        data = (policy_dir / "data.json").read_text()
        (policy_dir / "data.json").write_text(data.replace('"read_only": true', '"read_only": false'))
        await eventually(lambda: engine.revision >= 2)
        assert (await engine.decide(call("viewer", "analytics", "query"))).allow


async def test_an_invalid_edit_keeps_the_last_good_policy_and_reports_the_error(policy_dir: Path) -> None:
    before = _reload_errors()
    async with EmbeddedRegoEngine(policy_dir, reload_interval=0.02) as engine:
        (policy_dir / "rules.rego").write_text("package bastion.authz\n\ndeny contains x if {\n")
        await eventually(lambda: not engine.status().ok)
        status = engine.status()
        assert status.error is not None
        assert "rules.rego" in status.error
        assert status.revision == 1
        assert _reload_errors() == before + 1
        assert REGISTRY.get_sample_value("bastion_policy_ok") == 0
        # The last good policy still decides.
        assert (await engine.decide(call("admin", "system", "version"))).allow
        assert not (await engine.decide(call("viewer", "analytics", "query"))).allow
        # Fixing the file brings status back.
        (policy_dir / "rules.rego").write_text(
            (Path(__file__).parents[3] / "policies" / "rules.rego").read_text()
        )
        await eventually(lambda: engine.status().ok)
        assert engine.revision == 2


async def test_a_new_data_value_that_breaks_the_decision_is_refused(policy_dir: Path) -> None:
    engine = EmbeddedRegoEngine(policy_dir, reload_interval=None)
    data = (policy_dir / "data.json").read_text()
    (policy_dir / "data.json").write_text(data.replace('"per_minute": 1200', '"per_minute": "fast"'))
    assert await engine.check()
    status = engine.status()
    assert not status.ok
    assert status.error is not None and "rate" in status.error
    assert (await engine.decide(call("admin", "system", "version"))).allow


async def test_query_tells_undefined_from_null(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(
        "package bastion.authz\n\n"
        'decision := {"allow": false, "reasons": ["deny: no"], "obligations": null}\n\n'
        "nothing := null\n"
    )
    engine = EmbeddedRegoEngine(tmp_path, reload_interval=None, strict=True)
    assert await engine.query("bastion/authz/nothing") is None
    assert await engine.query("bastion.authz.missing") is UNDEFINED
    assert (await engine.decide(call("admin", "system", "version"))).obligations.row_limit == 0


async def test_a_reload_leaves_no_engine_with_the_worker_thread(
    policy_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """regorus engines may only be dropped on the thread that made them: if the worker that read
    the files held the last reference, the engine would be dropped there (an error pytest
    reports as unraisable). The work handed to the thread must not reference the engine."""
    handed: list[tuple[object, ...]] = []
    run_sync = anyio.to_thread.run_sync

    async def keeping(func: Callable[..., object], *args: object) -> object:
        handed.append((func, *args))
        return await run_sync(func, *args)

    monkeypatch.setattr(anyio.to_thread, "run_sync", keeping)
    engine = EmbeddedRegoEngine(policy_dir, reload_interval=None, strict=True)
    assert await engine.reload()
    (policy_dir / "data.json").write_text((policy_dir / "data.json").read_text() + "\n")
    assert await engine.check()
    gone = weakref.ref(engine)
    del engine
    gc.collect()
    assert len(handed) >= 3 and gone() is None


def test_an_engine_in_a_reference_cycle_collected_on_another_thread_is_not_dropped_there() -> None:
    """The cyclic collector runs on whichever thread crosses its threshold; an engine whose
    owner it frees there must stay held until the thread that made it lets go."""
    import sys
    import threading

    raised: list[BaseException | None] = []
    previous, sys.unraisablehook = sys.unraisablehook, lambda hook: raised.append(hook.exc_value)
    gc.disable()  # only the collection below, on the worker thread
    try:
        engine = EmbeddedRegoEngine(reload_interval=None)
        engine.cycle = engine  # type: ignore[attr-defined]
        gone = weakref.ref(engine)
        del engine
        worker = threading.Thread(target=gc.collect)
        worker.start()
        worker.join(timeout=30)
        assert gone() is None
        EmbeddedRegoEngine(reload_interval=None)  # this thread lets go of the freed owner's engine
    finally:
        gc.enable()
        sys.unraisablehook = previous
    assert raised == []
