"""A policy folder read from disk: Rego modules plus data, as OPA would load it.

Layout follows OPA bundles: every `*.rego` file is a module, and a `data.json` placed in a
folder `a/b/` becomes `data.a.b` (at the top, it is `data`). `*_test.rego` files are tests,
loaded only when asked. Hidden files and folders are ignored.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gateway.policy._regorus import RegorusEngine, new_engine
from gateway.policy.errors import PolicyLoadError

__all__ = ["Fingerprint", "PolicyBundle", "clean_error", "default_policy_dir", "fingerprint"]

logger = logging.getLogger(__name__)

DATA_FILE = "data.json"
TEST_SUFFIX = "_test.rego"
# One (relative path, mtime in ns, size) per file: what the reload watcher compares.
Fingerprint = tuple[tuple[str, int, int], ...]


def default_policy_dir() -> Path:
    """The `policies/` folder shipped with Bastion (next to the `gateway` package)."""
    return Path(__file__).resolve().parents[2] / "policies"


def clean_error(exc: BaseException) -> str:
    """An engine error as one readable message (regorus appends a Rust backtrace when
    RUST_BACKTRACE is set)."""
    text = str(exc).split("Stack backtrace:", 1)[0].strip()
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(exc).__name__


def _wanted(name: str, include_tests: bool) -> bool:
    if name.startswith("."):
        return False
    if name == DATA_FILE:
        return True
    return name.endswith(".rego") and (include_tests or not name.endswith(TEST_SUFFIX))


def _files(folder: Path, include_tests: bool) -> list[Path]:
    found: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / name for name in sorted(names) if _wanted(name, include_tests)]
    return found


def fingerprint(folder: Path, include_tests: bool = False) -> Fingerprint:
    """What changes when a policy or data file is added, removed or edited."""
    marks: list[tuple[str, int, int]] = []
    for path in _files(folder, include_tests):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue  # removed while we looked: the next poll sees it gone
        marks.append((str(path.relative_to(folder)), stat.st_mtime_ns, stat.st_size))
    return tuple(marks)


def _merge(base: dict[str, Any], extra: Mapping[str, Any], *, overwrite: bool, where: str) -> None:
    for key, value in extra.items():
        current = base.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            _merge(current, value, overwrite=overwrite, where=where)  # type: ignore[arg-type]
        elif key in base and not overwrite:
            raise PolicyLoadError(f"{where}: data key {key!r} is defined twice. Keep one definition.")
        else:
            base[key] = value


def defined_roles(data: Mapping[str, Any]) -> tuple[str, ...]:
    """The roles a policy's data grants something to (`bastion.grants.roles`), in its order."""
    bastion = data.get("bastion")
    grants = bastion.get("grants") if isinstance(bastion, dict) else None
    roles = grants.get("roles") if isinstance(grants, dict) else None
    return tuple(roles) if isinstance(roles, dict) else ()


@dataclass(frozen=True)
class PolicyBundle:
    """The modules and data of one policy folder, as read at one moment."""

    folder: Path
    modules: tuple[tuple[str, str], ...]
    data: dict[str, Any]
    fingerprint: Fingerprint

    @classmethod
    def load(
        cls,
        folder: Path,
        *,
        include_tests: bool = False,
        extra_data: Mapping[str, Any] | None = None,
    ) -> PolicyBundle:
        """Read `folder`; `extra_data` is merged over the files' data (its values win)."""
        if not folder.is_dir():
            raise PolicyLoadError(
                f"policy folder {folder} does not exist. Point BASTION_POLICY_DIR at a folder of .rego files."
            )
        marks = fingerprint(folder, include_tests)
        modules: list[tuple[str, str]] = []
        data: dict[str, Any] = {}
        for path in _files(folder, include_tests):
            relative = path.relative_to(folder)
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise PolicyLoadError(
                    f"{path}: cannot read ({exc.strerror}). Check its permissions."
                ) from exc
            if path.name == DATA_FILE:
                try:
                    value = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    raise PolicyLoadError(f"{path}: invalid JSON ({exc}). Fix the file.") from exc
                if not isinstance(value, dict):
                    raise PolicyLoadError(f"{path}: data must be a JSON object at the top.")
                for part in reversed(relative.parent.parts):
                    value = {part: value}
                _merge(data, value, overwrite=False, where=str(path))
            else:
                try:
                    modules.append((str(relative), raw.decode("utf-8")))
                except UnicodeDecodeError as exc:
                    raise PolicyLoadError(f"{path}: not UTF-8 text ({exc.reason}).") from exc
        if not any(not name.endswith(TEST_SUFFIX) for name, _ in modules):
            raise PolicyLoadError(
                f"policy folder {folder} holds no .rego policy. Add one or point elsewhere."
            )
        if extra_data:
            _merge(data, extra_data, overwrite=True, where="extra data")
        return cls(folder, tuple(modules), data, marks)

    @property
    def sources(self) -> tuple[str, ...]:
        names = [name for name, _ in self.modules]
        if any(mark[0].endswith(DATA_FILE) for mark in self.fingerprint):
            names += [mark[0] for mark in self.fingerprint if mark[0].endswith(DATA_FILE)]
        return tuple(names)

    def compile(self) -> RegorusEngine:
        """A regorus engine with every module parsed and the data added."""
        engine = new_engine()
        for name, source in self.modules:
            try:
                engine.add_policy(str(self.folder / name), source)
            except Exception as exc:  # regorus raises RuntimeError with the parser's message
                raise PolicyLoadError(f"invalid policy: {clean_error(exc)}") from exc
        try:
            engine.add_data(self.data)
        except Exception as exc:
            raise PolicyLoadError(f"invalid policy data in {self.folder}: {clean_error(exc)}") from exc
        return engine
