"""Keys for the private store: 32 random bytes that live in the OS keystore, never beside the
store file.

On a phone the host app keeps the key in the platform keystore (Android Keystore, iOS Keychain)
and passes it as `store_key`. On a desktop, `keyring_store_key` keeps it in the user's keyring
through the optional `keyring` package (macOS Keychain, Windows Credential Locker, Secret
Service); the SDK itself does not depend on it.
"""

from __future__ import annotations

import base64
import importlib
import secrets
from typing import Protocol

from ._crypto import SEAL_KEY_BYTES
from .errors import StoreError


class KeyringBackend(Protocol):
    """The part of the `keyring` package's API that `keyring_store_key` uses."""

    def get_password(self, service_name: str, username: str) -> str | None: ...

    def set_password(self, service_name: str, username: str, password: str) -> None: ...


def generate_store_key() -> bytes:
    """A fresh random 32-byte store key. Keep it in the OS keystore, never beside the store."""
    return secrets.token_bytes(SEAL_KEY_BYTES)


def keyring_store_key(
    service: str = "facetwo",
    account: str = "private-store",
    *,
    backend: KeyringBackend | None = None,
) -> bytes:
    """The store key kept in the desktop keyring (created on first use).

    Uses the `keyring` package (macOS Keychain, Windows Credential Locker, Secret Service) when
    it is installed, or any object with its `get_password`/`set_password` methods.

    Raises:
        StoreError: no keyring is available, or the stored key is malformed.
    """
    if backend is None:
        try:
            backend = importlib.import_module("keyring")
        except ImportError as exc:
            raise StoreError(
                "no desktop keyring: install the 'keyring' package or pass store_key"
            ) from exc
    assert backend is not None  # noqa: S101 - narrowed above
    stored = backend.get_password(service, account)
    if stored is None:
        key = generate_store_key()
        backend.set_password(service, account, base64.b64encode(key).decode("ascii"))
        return key
    try:
        key = base64.b64decode(stored, validate=True)
    except ValueError as exc:
        raise StoreError(f"keyring entry {service}/{account} is not base64") from exc
    if len(key) != SEAL_KEY_BYTES:
        raise StoreError(
            f"keyring entry {service}/{account} holds {len(key)} bytes, expected {SEAL_KEY_BYTES}"
        )
    return key
