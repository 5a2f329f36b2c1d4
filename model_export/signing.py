"""Step "sign": Ed25519 signing keys and manifest signatures.

The private key is a PKCS#8 PEM file written with mode 0600, optionally encrypted with a
passphrase taken from the environment by the caller; it never has a default and is never logged.
The signature file holds a list of signatures so that a key rotation can sign with old and new.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from client_sdk._crypto import key_id

from .errors import ExportError

PRIVATE_KEY_FILE = "signing.key"
PUBLIC_KEY_FILE = "signing.pub"


@dataclass(frozen=True, slots=True)
class KeyPairPaths:
    """Where `write_key_pair` put the two halves."""

    private_key: Path
    public_key: Path
    key_id: str


def write_key_pair(out_dir: Path, *, passphrase: bytes | None = None) -> KeyPairPaths:
    """Create a new Ed25519 key pair as `signing.key` (0600) and `signing.pub` in `out_dir`.

    Raises:
        ExportError: a key already exists there (keys are never overwritten).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out_dir / PRIVATE_KEY_FILE, out_dir / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if path.exists():
            raise ExportError(f"{path} already exists; refusing to overwrite a signing key")
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(public_pem(key.public_key()))
    return KeyPairPaths(private_path, public_path, key_id(key.public_key()))


def load_private_key(path: Path, *, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from a PEM file.

    Raises:
        ExportError: the file is missing, unreadable, encrypted without the right passphrase,
            or not an Ed25519 key.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExportError(f"cannot read signing key {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except (ValueError, TypeError) as exc:
        raise ExportError(f"{path} is not a readable PEM private key (wrong passphrase?)") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ExportError(f"{path} holds a {type(key).__name__}, expected an Ed25519 key")
    return key


def public_pem(key: Ed25519PublicKey) -> bytes:
    """The PEM (SubjectPublicKeyInfo) form of a public key, the form devices are given."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sign_manifest(manifest_bytes: bytes, keys: Sequence[Ed25519PrivateKey]) -> bytes:
    """The `manifest.sig` bytes: one signature per key over the exact manifest bytes.

    Raises:
        ExportError: no key given.
    """
    if not keys:
        raise ExportError("at least one signing key is needed")
    signatures = [
        {
            "keyid": key_id(key.public_key()),
            "sig": base64.b64encode(key.sign(manifest_bytes)).decode("ascii"),
        }
        for key in keys
    ]
    return json.dumps({"signatures": signatures}, indent=1).encode("utf-8") + b"\n"
