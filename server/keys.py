"""Key management for the registry: create and rotate the TUF role keys and the bundle key.

A keys directory holds::

    root.json                      the newest root: ship it in apps as their trust anchor
    offline/root-<id>.key          root keys; keep them offline, bring them only to rotate
    online/targets-<id>.key        online keys: the service signs metadata with these
    online/snapshot-<id>.key
    online/timestamp-<id>.key
    online/signing.key, .pub       the bundle key: signs bundle manifests (training jobs,
                                   rollbacks); devices trust signing.pub
    retired/                       keys rotated out; destroy them once devices have moved on

Private keys are PKCS#8 PEM files created with mode 0600 and never overwritten. A rotation
writes the new key files, installs root version N+1 into the registry (signed by a threshold of
the old root keys and of the new ones, so devices can follow) and only then retires the old
keys; the registry re-signs the online metadata under the new root in the same transaction.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root

from model_export.signing import write_key_pair
from server.errors import KeyMaterialError, ServerError
from server.registry import Registry
from server.tuf_repo import ONLINE_ROLES, MetadataLifetimes, OnlineKeys, tuf_key

__all__ = ["KeyRotation", "create_keys", "key_registry", "online_keys_dir", "rotate_keys"]

logger = logging.getLogger(__name__)

ROOT_FILE = "root.json"
_ROTATABLE = ("root", *ONLINE_ROLES)


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """What :func:`create_keys` or :func:`rotate_keys` did.

    Attributes:
        root_version: The root version now installed.
        root_path: Where the new root (the devices' trust anchor) was written.
        new_key_ids: TUF key ids of the keys created.
        retired: Key files moved to ``retired/``.
    """

    root_version: int
    root_path: Path
    new_key_ids: tuple[str, ...]
    retired: tuple[Path, ...] = ()


def online_keys_dir(keys_dir: Path) -> Path:
    """The directory the service reads its signing keys from (``keys_dir/online``)."""
    return keys_dir / "online"


def key_registry(keys_dir: Path, data_dir: Path, *, passphrase: bytes | None = None) -> Registry:
    """The registry in ``data_dir``, signing with the online keys of ``keys_dir``."""
    return Registry(data_dir, keys=OnlineKeys(online_keys_dir(keys_dir), passphrase=passphrase))


def create_keys(
    keys_dir: Path,
    registry: Registry,
    *,
    root_keys: int = 1,
    root_threshold: int = 1,
    lifetimes: MetadataLifetimes | None = None,
    passphrase: bytes | None = None,
    now: datetime | None = None,
) -> KeyRotation:
    """Create every key and install root version 1 into ``registry``.

    Args:
        keys_dir: A new (or empty) keys directory.
        registry: The registry to initialise; it must not have a root yet.
        root_keys: How many root keys to create.
        root_threshold: How many of them must sign a root.
        lifetimes: Root expiry (and the online metadata's).
        passphrase: Encrypt the private key files with it (from the environment).
        now: Creation time (timezone-aware); the current time when None.

    Returns:
        The keys created and root v1.

    Raises:
        ValueError: ``root_threshold`` is not in 1..``root_keys``.
        KeyMaterialError: ``keys_dir`` already holds keys.
        ServerError: The registry already has a root.
    """
    _check_threshold(root_keys, root_threshold)
    if (keys_dir / ROOT_FILE).exists() or (online_keys_dir(keys_dir) / "signing.key").exists():
        raise KeyMaterialError(f"{keys_dir} already holds keys; refusing to overwrite them")
    if registry.current_metadata("root") is not None:
        raise ServerError(f"{registry.data_dir} already has a TUF root; use `keys rotate`")
    moment = _now(now)
    lifetimes = lifetimes or MetadataLifetimes()
    write_key_pair(online_keys_dir(keys_dir), passphrase=passphrase)
    root = Root(expires=moment + lifetimes.root, consistent_snapshot=True)
    roots = [_new_key(keys_dir / "offline", "root", passphrase) for _ in range(root_keys)]
    for signer in roots:
        root.add_key(signer.public_key, "root")
    root.roles["root"].threshold = root_threshold
    created = [s.public_key.keyid for s in roots]
    for role in ONLINE_ROLES:
        signer = _new_key(online_keys_dir(keys_dir), role, passphrase)
        root.add_key(signer.public_key, role)
        created.append(signer.public_key.keyid)
    data = _sign_root(root, roots)
    version = registry.install_root(data, now=moment)
    _write_atomically(keys_dir / ROOT_FILE, data)
    logger.info("created %d keys and root v%d in %s", len(created) + 1, version, keys_dir)
    return KeyRotation(version, keys_dir / ROOT_FILE, tuple(created))


def rotate_keys(
    keys_dir: Path,
    registry: Registry,
    role: str,
    *,
    root_keys: int | None = None,
    root_threshold: int | None = None,
    lifetimes: MetadataLifetimes | None = None,
    passphrase: bytes | None = None,
    now: datetime | None = None,
) -> KeyRotation:
    """Replace the keys of ``role`` and install the next root version (which also renews it).

    Args:
        keys_dir: The keys directory (``offline/`` must hold a threshold of the current root
            keys).
        registry: The registry whose root is rotated.
        role: ``root``, ``targets``, ``snapshot`` or ``timestamp``.
        root_keys: For ``root``: how many new root keys (default: as many as now).
        root_threshold: For ``root``: the new threshold (default: as now).
        lifetimes: Root expiry.
        passphrase: Passphrase of the key files (from the environment).
        now: Rotation time (timezone-aware); the current time when None.

    Returns:
        The new root version, the new key ids and the retired key files.

    Raises:
        ValueError: Unknown role or a bad threshold.
        KeyMaterialError: Fewer than a threshold of the current root keys are available.
        ServerError: The registry has no root, or refused the new one.
    """
    if role not in _ROTATABLE:
        raise ValueError(f"role: expected one of {', '.join(_ROTATABLE)}, got {role!r}")
    current = _current_root(registry)
    old_root = current.signed
    moment = _now(now)
    offline = OnlineKeys(keys_dir / "offline", passphrase=passphrase).signers()
    old_signers = [offline[k] for k in old_root.roles["root"].keyids if k in offline]
    if len(old_signers) < old_root.roles["root"].threshold:
        raise KeyMaterialError(
            f"{keys_dir / 'offline'} holds {len(old_signers)} of the current root keys; "
            f"root v{old_root.version} needs {old_root.roles['root'].threshold} to sign v"
            f"{old_root.version + 1}"
        )
    new_root = copy.deepcopy(old_root)
    new_root.version += 1
    new_root.expires = moment + (lifetimes or MetadataLifetimes()).root
    old_ids = list(old_root.roles[role].keyids)
    if role == "root":
        count = root_keys if root_keys is not None else len(old_ids)
        threshold = root_threshold if root_threshold is not None else old_root.roles[role].threshold
        _check_threshold(count, threshold)
        fresh = [_new_key(keys_dir / "offline", "root", passphrase) for _ in range(count)]
        new_root.roles["root"].threshold = threshold
        root_signers = [*old_signers, *fresh]
    else:
        fresh = [_new_key(online_keys_dir(keys_dir), role, passphrase)]
        root_signers = old_signers
    for keyid in old_ids:
        new_root.revoke_key(keyid, role)
    for signer in fresh:
        new_root.add_key(signer.public_key, role)
    data = _sign_root(new_root, root_signers)
    try:
        version = registry.install_root(data, now=moment)
    except BaseException:
        _remove_key_files(keys_dir, [s.public_key.keyid for s in fresh])
        raise
    _write_atomically(keys_dir / ROOT_FILE, data)
    retired = _retire(keys_dir, old_ids)
    logger.info("rotated %s keys: root v%d", role, version)
    return KeyRotation(
        version, keys_dir / ROOT_FILE, tuple(s.public_key.keyid for s in fresh), retired
    )


def _current_root(registry: Registry) -> Metadata[Root]:
    found = registry.current_metadata("root")
    if found is None:
        raise ServerError(f"{registry.data_dir} has no TUF root: run `facetwo keys create`")
    with registry.blobs.open(found[1]) as handle:
        metadata: Metadata[Root] = Metadata.from_bytes(handle.read())
    return metadata


def _sign_root(root: Root, signers: Iterable[CryptoSigner]) -> bytes:
    metadata = Metadata(root)
    for signer in signers:  # old root keys vouch for the new root, new keys for themselves
        metadata.sign(signer, append=True)
    return metadata.to_bytes()


def _new_key(directory: Path, role: str, passphrase: bytes | None) -> CryptoSigner:
    key = Ed25519PrivateKey.generate()
    signer = CryptoSigner(key, tuf_key(key.public_key()))
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{role}-{signer.public_key.keyid[:16]}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    return signer


def _key_files(keys_dir: Path, keyid: str) -> list[Path]:
    found: list[Path] = []
    for sub in ("offline", "online"):
        found.extend((keys_dir / sub).glob(f"*-{keyid[:16]}.key"))
    return found


def _remove_key_files(keys_dir: Path, keyids: Iterable[str]) -> None:
    for keyid in keyids:
        for path in _key_files(keys_dir, keyid):
            path.unlink(missing_ok=True)


def _retire(keys_dir: Path, keyids: Iterable[str]) -> tuple[Path, ...]:
    moved: list[Path] = []
    retired = keys_dir / "retired"
    for keyid in keyids:
        for path in _key_files(keys_dir, keyid):
            retired.mkdir(mode=0o700, exist_ok=True)
            target = retired / path.name
            shutil.move(str(path), target)
            moved.append(target)
    return tuple(moved)


def _write_atomically(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    with temp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def _check_threshold(count: int, threshold: int) -> None:
    if count < 1:
        raise ValueError(f"root_keys: must be >= 1, got {count}")
    if not 1 <= threshold <= count:
        raise ValueError(f"root_threshold: must be between 1 and {count}, got {threshold}")


def _now(now: datetime | None) -> datetime:
    if now is not None and now.utcoffset() is None:
        raise ValueError("now: must be timezone-aware")
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
