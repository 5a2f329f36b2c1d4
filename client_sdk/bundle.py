"""The bundle format, owned by the reader: file names, the catalog, and `read_bundle()`.

A bundle is a directory with `manifest.json` (what the model is and the sha256 and size of every
file), `manifest.sig` (Ed25519 signatures over the exact manifest bytes), `model.onnx` and
`catalog.json` (columns since format 2: `catalog.py`). `read_bundle()` reads every listed file's
raw bytes under size caps and verifies them (see `verify.py`) before anything is parsed; callers
then parse the verified bytes they hold in memory, so a file swapped on disk after the check is
never used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from ._crypto import PublicKeyLike, load_public_key
from .catalog import CATALOG_FILE as CATALOG_FILE
from .catalog import BundleCatalog as BundleCatalog
from .catalog import CatalogEntry as CatalogEntry
from .catalog import parse_catalog as _parse_catalog_layout
from .errors import BundleError, DigestMismatchError, FormatError, SignatureError
from .verify import (
    MAX_MANIFEST_BYTES,
    MAX_SIGNATURE_BYTES,
    Manifest,
    verify_file,
    verify_manifest,
)

MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
MODEL_FILE = "model.onnx"
REORDER_PRIORS_FILE = "reorder_priors.json"
"""optional: reorder priors for shortcuts (`priors.parse_priors` reads the verified bytes)."""
CONTEXT_PRIOR_FILE = "context_prior.json"
"""optional: popularity per month and part of day for empty sessions (`context_prior.py`)."""
GIFT_PRIOR_FILE = "gift_prior.json"
"""optional: what is bought as a gift, per month and part of day, for gift mode (same format)."""
REQUIRED_FILES = (MODEL_FILE, CATALOG_FILE)
DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024
_B = TypeVar("_B")
_F = TypeVar("_F")


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose every file passed verification, held in memory."""

    path: Path
    manifest: Manifest
    files: dict[str, bytes]

    def catalog(self) -> BundleCatalog:
        """Parse the verified catalog bytes.

        Raises:
            FormatError: the catalog is malformed or disagrees with the manifest's item count.
        """
        return parse_catalog(self.files[CATALOG_FILE], self.manifest)


def load_trusted_keys(trusted_keys: Sequence[PublicKeyLike]) -> list[Any]:
    """Normalise every accepted key form to Ed25519 public keys (see `load_public_key`)."""
    if isinstance(trusted_keys, (str, bytes)):
        raise TypeError("trusted_keys must be a sequence of keys, not a single str or bytes")
    return [load_public_key(key) for key in trusted_keys]


def read_bundle(
    bundle_dir: Path | str,
    trusted_keys: Sequence[PublicKeyLike],
    *,
    now: datetime | None = None,
    installed_version: int | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> VerifiedBundle:
    """Read and verify a bundle directory; nothing in it is parsed before it is verified.

    Raises:
        SignatureError, FormatError, RollbackError, ExpiredBundleError, DigestMismatchError:
            the bundle must not be used (see `verify.py` for the rules).
        BundleError: a file is missing or unreadable.
    """
    path = Path(bundle_dir)
    keys = load_trusted_keys(trusted_keys)
    manifest_bytes = _read_capped(path / MANIFEST_FILE, MAX_MANIFEST_BYTES, SignatureError)
    signature_bytes = _read_capped(path / SIGNATURE_FILE, MAX_SIGNATURE_BYTES, SignatureError)
    manifest = verify_manifest(
        manifest_bytes,
        signature_bytes,
        keys,
        now=now or datetime.now(timezone.utc),
        installed_version=installed_version,
    )
    missing = [name for name in REQUIRED_FILES if name not in manifest.files]
    if missing:
        raise FormatError(f"manifest of {path} does not list {', '.join(missing)}")
    for name, entry in manifest.files.items():
        if entry.size > max_file_bytes:
            raise DigestMismatchError(
                f"file {name!r} is listed at {entry.size} bytes, over the cap of {max_file_bytes}"
            )
    # Reading and hashing release the GIL: the largest file (the model) is read and checked on
    # a helper thread while this one checks the rest. Nothing is parsed until all are checked.
    largest = max(manifest.files, key=lambda name: manifest.files[name].size)
    big, files = run_beside(
        lambda: _read_verified(path, manifest, largest),
        lambda: {
            name: _read_verified(path, manifest, name) for name in manifest.files if name != largest
        },
        name="facetwo-verify",
    )
    files[largest] = big
    return VerifiedBundle(path=path, manifest=manifest, files=files)


def run_beside(
    background: Callable[[], _B], foreground: Callable[[], _F], *, name: str
) -> tuple[_B, _F]:
    """Run `background` on a helper thread named `name` while `foreground` runs on this one,
    and return both results; the helper is joined on every path. An error in `foreground`
    wins (it is raised once the helper is done). Where no thread can start (the interpreter
    is shutting down, a thread limit), both run here, in turn.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        try:
            pending = pool.submit(background)
        except RuntimeError:
            return background(), foreground()
        here = foreground()
        return pending.result(), here


def _read_verified(path: Path, manifest: Manifest, name: str) -> bytes:
    data = _read_capped(path / name, manifest.files[name].size, DigestMismatchError)
    verify_file(manifest, name, data)
    return data


def parse_catalog(data: bytes, manifest: Manifest) -> BundleCatalog:
    """Parse verified `catalog.json` bytes into the catalog in model-index order, in the layout
    of the manifest's format version (`catalog.py`).

    Raises:
        FormatError: the catalog is malformed or its size disagrees with the manifest.
    """
    catalog = _parse_catalog_layout(data, manifest.format_version)
    expected = manifest.model.get("n_items")
    if expected is not None and expected != len(catalog):
        raise FormatError(f"{CATALOG_FILE} has {len(catalog)} items, manifest says {expected}")
    return catalog


def _read_capped(path: Path, cap: int, error: type[BundleError]) -> bytes:
    """Read at most `cap` bytes of `path`; a larger file is refused without being read whole."""
    try:
        with path.open("rb") as handle:
            data = handle.read(cap + 1)
    except FileNotFoundError as exc:
        raise error(f"bundle file {path} is missing") from exc
    except OSError as exc:
        raise error(f"bundle file {path} cannot be read: {exc.strerror}") from exc
    if len(data) > cap:
        raise error(f"bundle file {path} is larger than its cap of {cap} bytes")
    return data
