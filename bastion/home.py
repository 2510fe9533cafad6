"""The instance folder (`BASTION_HOME`) and the instance key kept in it.

Layout:

    $BASTION_HOME/
        instance.key        32 random bytes, mode 0600: signs caller contexts, encrypts secrets
        pgdata/             the embedded PostgreSQL cluster (owned by its system user as root)
        run/                pid files, supervisor state, sockets
        logs/               child process logs
        backups/            default place for `bastion db backup`
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from bastion.errors import HomeError

__all__ = ["ROOT_HOME_HINT", "Home", "under_root_home"]

ROOT_HOME_HINT = (
    "as root, the embedded PostgreSQL runs as the system user 'embedded_postgres', which must "
    "traverse every parent folder of its data and of its binaries; Bastion will not open /root "
    "to other users. Set BASTION_HOME to a folder outside /root (for example /var/lib/bastion) "
    "and keep the virtual environment outside /root too"
)


def under_root_home(path: Path) -> bool:
    resolved = path.resolve()
    return resolved == Path("/root") or Path("/root") in resolved.parents


class Home:
    """Paths inside one instance folder, created on first use."""

    KEY_BYTES = 32

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def pgdata(self) -> Path:
        return self.path / "pgdata"

    @property
    def run(self) -> Path:
        return self.path / "run"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def key_file(self) -> Path:
        return self.path / "instance.key"

    @property
    def supervisor_state(self) -> Path:
        return self.run / "supervisor.json"

    def ensure(self) -> None:
        """Create the folder tree, or fail with the cause and the fix."""
        if os.geteuid() == 0 and under_root_home(self.path):
            raise HomeError(f"BASTION_HOME={self.path}: {ROOT_HOME_HINT}.")
        try:
            for folder in (self.path, self.run, self.logs):
                folder.mkdir(parents=True, exist_ok=True)
            probe = self.run / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise HomeError(
                f"BASTION_HOME={self.path} is not writable ({exc.strerror}). "
                "Choose a folder you own with BASTION_HOME=/path, or fix its permissions."
            ) from None

    def instance_key(self, *, create: bool = False) -> bytes:
        """The instance secret; created with mode 0600 when `create` and missing."""
        try:
            data = self.key_file.read_bytes()
        except FileNotFoundError:
            if not create:
                raise HomeError(
                    f"no instance key at {self.key_file}. Run `bastion up` once to create it, "
                    "or point BASTION_HOME at an existing instance."
                ) from None
            return self._create_key()
        except OSError as exc:
            raise HomeError(f"cannot read {self.key_file} ({exc.strerror}). Check its permissions.") from None
        if len(data) != self.KEY_BYTES:
            raise HomeError(
                f"{self.key_file} holds {len(data)} bytes, expected {self.KEY_BYTES}. "
                "Restore it from a backup; a new key would invalidate stored secrets."
            )
        return data

    def _create_key(self) -> bytes:
        self.ensure()
        key = secrets.token_bytes(self.KEY_BYTES)
        try:
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            # Another process created it first: use theirs.
            return self.instance_key()
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        return key
