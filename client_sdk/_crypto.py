"""Cryptographic primitives of the client SDK, behind names that say what they guarantee.

Ed25519 signature checks guard bundles; AES-256-GCM sealing guards the private store (`seal`,
`open_sealed`: every record encrypted and authenticated, with associated data binding it to its
place). All from `cryptography`. Nothing in this module logs or returns key material.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Union

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import SignatureError, StoreUnreadableError

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


SEAL_KEY_BYTES = 32
"""Store keys are 32 random bytes (AES-256)."""
_NONCE_BYTES = 12
_TAG_BYTES = 16
SEAL_OVERHEAD_BYTES = _NONCE_BYTES + _TAG_BYTES
"""What sealing adds to a plaintext's length: the nonce and the authentication tag."""


class SealKey:
    """An AES-256-GCM key derived for one purpose; opaque (its repr shows nothing)."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SealKey(<hidden>)"


def derive_seal_key(master_key: bytes, *, salt: bytes, purpose: bytes) -> SealKey:
    """Derive a sealing key from the host's master key with HKDF-SHA256.

    A per-store random `salt` makes the same master key yield unrelated keys for two stores.

    Raises:
        TypeError: `master_key` is not bytes.
        ValueError: `master_key` is not 32 bytes long.
    """
    if not isinstance(master_key, (bytes, bytearray)):
        raise TypeError(f"store_key must be bytes, not {type(master_key).__name__}")
    if len(master_key) != SEAL_KEY_BYTES:
        raise ValueError(f"store_key must be {SEAL_KEY_BYTES} bytes, found {len(master_key)}")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=SEAL_KEY_BYTES, salt=salt, info=purpose)
    return SealKey(hkdf.derive(bytes(master_key)))


def seal(key: SealKey, plaintext: bytes, *, associated_data: bytes) -> bytes:
    """Encrypt and authenticate `plaintext` under a fresh random nonce: nonce || ciphertext || tag.

    `associated_data` is authenticated, not stored: opening needs the same bytes, so a sealed
    record moved to another place (table, row id) no longer opens.
    """
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + key._aead.encrypt(nonce, plaintext, associated_data)


def open_sealed(key: SealKey, sealed: bytes, *, associated_data: bytes) -> bytes:
    """Authenticate and decrypt what `seal` produced with the same key and associated data.

    Raises:
        StoreUnreadableError: wrong key, tampered bytes or a record moved from its place; one
            error without detail, by design.
    """
    if len(sealed) < SEAL_OVERHEAD_BYTES:
        raise StoreUnreadableError("store is unreadable: wrong key or damaged file")
    try:
        return key._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], associated_data)
    except InvalidTag as exc:
        raise StoreUnreadableError("store is unreadable: wrong key or damaged file") from exc
