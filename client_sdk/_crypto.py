"""Cryptographic primitives of the client SDK, behind names that say what they guarantee.

Only Ed25519 signature checks (from `cryptography`) live here. Nothing in this module logs or
returns key material.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import SignatureError

PublicKeyLike = Union[Ed25519PublicKey, bytes, str, "os.PathLike[str]"]
"""A trusted key: an Ed25519 public key object, its raw 32 bytes, PEM bytes or text, or a path to
a PEM file."""

_RAW_KEY_BYTES = 32


def load_public_key(key: PublicKeyLike) -> Ed25519PublicKey:
    """Turn any accepted form of a trusted public key into an Ed25519 public key.

    Raises:
        TypeError: the key is of an unsupported type.
        ValueError: the bytes are neither a raw 32-byte key nor a PEM Ed25519 public key.
    """
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, os.PathLike):
        data = Path(key).read_bytes()
    elif isinstance(key, str):
        data = (
            key.encode("ascii") if key.lstrip().startswith("-----BEGIN") else Path(key).read_bytes()
        )
    elif isinstance(key, bytes):
        data = key
    else:
        raise TypeError(
            f"trusted key must be bytes, str, a path or Ed25519PublicKey, not {type(key)!r}"
        )
    if len(data) == _RAW_KEY_BYTES:
        return Ed25519PublicKey.from_public_bytes(data)
    try:
        loaded = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ValueError("trusted key is neither raw 32 bytes nor a PEM public key") from exc
    if not isinstance(loaded, Ed25519PublicKey):
        raise ValueError(
            f"trusted key is a {type(loaded).__name__}, expected an Ed25519 public key"
        )
    return loaded


def key_id(key: Ed25519PublicKey) -> str:
    """The key's id: hex sha256 of its raw public bytes (names a key without revealing anything)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def check_signature(key: Ed25519PublicKey, signature_b64: str, message: bytes) -> None:
    """Raise SignatureError unless `signature_b64` is `key`'s valid signature over `message`."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, TypeError) as exc:
        raise SignatureError("signature is not valid base64") from exc
    try:
        key.verify(signature, message)
    except InvalidSignature as exc:
        raise SignatureError("manifest signature does not verify") from exc


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()
