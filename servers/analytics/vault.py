"""Encryption of external-source DSNs with a key derived from the instance key.

AES-256-GCM with a key from HKDF-SHA256 over the instance key and a label of its own,
so the key that signs caller contexts never encrypts anything itself. The source name
is the associated data: a ciphertext copied onto another source's row fails to open.
Stored form: version byte, 12-byte nonce, ciphertext with tag.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from servers.analytics.errors import SourceError

__all__ = ["HKDF_INFO", "DsnVault"]

HKDF_INFO = b"bastion/analytics/source-dsn"
_VERSION = b"\x01"
_NONCE = 12


class DsnVault:
    """Seal and open DSNs for one instance."""

    def __init__(self, instance_key: bytes) -> None:
        if len(instance_key) < 32:
            raise ValueError("the DSN vault needs the 32-byte instance key")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(instance_key)
        self._aead = AESGCM(derived)

    def seal(self, source: str, dsn: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, dsn.encode("utf-8"), source.encode("utf-8"))

    def open(self, source: str, sealed: bytes) -> str:
        if sealed[:1] != _VERSION or len(sealed) < 1 + _NONCE + 16:
            raise SourceError(f"the stored secret of source {source!r} is damaged; register it again")
        nonce, body = sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :]
        try:
            return self._aead.decrypt(nonce, body, source.encode("utf-8")).decode("utf-8")
        except InvalidTag:
            raise SourceError(
                f"the stored secret of source {source!r} cannot be decrypted with this instance's key "
                "(was BASTION_HOME's instance key replaced?); register the source again"
            ) from None
