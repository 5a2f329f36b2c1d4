"""Step "fetch/verify/install": bring a newer bundle from the service onto the device, safely.

With a `trusted_root` (the registry's TUF root metadata, shipped with the app):

1. refresh the TUF metadata with python-tuf's ngclient (`tuf_client.py`): root rotations,
   timestamp, snapshot, targets, each signed by a threshold of trusted keys, unexpired and
   never older than what this device has seen;
2. look up `<channel>/manifest.json` in the signed targets; if it is the installed one, stop;
3. download the manifest and its signature as TUF targets (length and sha256 signed) and verify
   the bundle's own signature, format, newer version and expiry (`verify_manifest`);
4. download every file the manifest lists as a TUF target; the signed targets and the signed
   manifest must agree on its size and sha256, and both are checked;
5. fsync it all in a temporary directory beside the installed bundles, `os.replace` it into
   place, then atomically move the `current` pointer.

Without a `trusted_root` the updater falls back to the bundle's own signed manifest alone
(`/v1/channels/<channel>/manifest.json`, `.sig`, then `/v1/blobs/<sha256>`): signature, version,
expiry and hashes hold, but not TUF's key rotation, thresholds or mix-and-match protection.

A failure at any step raises and leaves the last good bundle installed and in use. Requests
carry no cookies, credentials, Referer or identifiers: only a fixed User-Agent. One update has a
total deadline and every download a size cap. Every request is written to a network ledger
before it goes out (`network_ledger()`): the shopper's own, when the fetcher is a
`LedgerFetcher` from `Recommender.ledger_fetcher()`, else `network-ledger.jsonl` in the install
directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from ._crypto import PublicKeyLike, sha256_hex
from .bundle import MANIFEST_FILE, SIGNATURE_FILE, load_trusted_keys, read_bundle
from .errors import BundleError, DigestMismatchError, FetchError, HttpStatusError
from .ledger import FileLedger, LedgerEntry, LedgerFetcher
from .tuf_client import TufView, read_trusted_root
from .verify import (
    MAX_MANIFEST_BYTES,
    MAX_SIGNATURE_BYTES,
    Manifest,
    verify_file,
    verify_manifest,
)

logger = logging.getLogger(__name__)

USER_AGENT = "facetwo-sdk"
"""The same for every device and version: it identifies nobody."""
_POINTER = "current.json"
LEDGER_FILE = "network-ledger.jsonl"
"""The updater's own network ledger, in the install directory."""
_TUF_DIR = "tuf"


class Fetcher(Protocol):
    """Fetches public bytes. Implementations must send nothing that identifies the device."""

    def fetch(self, url: str, *, max_bytes: int) -> bytes:
        """GET `url`; raise FetchError on failure or when the body exceeds `max_bytes`.

        An HTTP error status should raise `HttpStatusError` (a `FetchError`) with the status:
        the TUF client reads a 404 for the next root version as "no newer root".
        """
        ...


@dataclass(frozen=True, slots=True)
class UpdaterConfig:
    """Caps and deadlines of one update.

    Attributes:
        max_file_bytes: Largest bundle file accepted.
        timeout_seconds: Deadline of each HTTP request of the default fetcher.
        keep_bundles: Installed bundles kept (the current one and the last good ones).
        deadline_seconds: Total time one update may take, all downloads included.
    """

    max_file_bytes: int = 512 * 1024 * 1024
    timeout_seconds: float = 30.0
    keep_bundles: int = 2
    deadline_seconds: float = 600.0

    def __post_init__(self) -> None:
        """Raises: ValueError naming the field that is out of range."""
        if self.max_file_bytes < 1:
            raise ValueError(f"max_file_bytes must be >= 1, found {self.max_file_bytes}")
        if not 0 < self.timeout_seconds <= 3600:
            raise ValueError(f"timeout_seconds must be in (0, 3600], found {self.timeout_seconds}")
        if self.keep_bundles < 1:
            raise ValueError(f"keep_bundles must be >= 1, found {self.keep_bundles}")
        if not 0 < self.deadline_seconds <= 86_400:
            raise ValueError(
                f"deadline_seconds must be in (0, 86400], found {self.deadline_seconds}"
            )


class HttpFetcher:
    """GET over HTTP(S) with urllib: no cookies, no proxy credentials, no redirects, no Referer."""

    def __init__(self, *, timeout_seconds: float = 30.0) -> None:
        self._timeout = timeout_seconds
        # Only the handlers needed: no cookie jar, no auth handlers (so no netrc or proxy
        # credentials), and no redirect handler (a 3xx is an error, not a new destination).
        self._opener = urllib.request.OpenerDirector()
        for handler in (
            urllib.request.HTTPHandler(),
            urllib.request.HTTPSHandler(),
            urllib.request.HTTPDefaultErrorHandler(),
            urllib.request.HTTPErrorProcessor(),
        ):
            self._opener.add_handler(handler)

    def fetch(self, url: str, *, max_bytes: int) -> bytes:
        """GET `url` within the deadline and `max_bytes`.

        Raises:
            HttpStatusError: the server answered with an error status.
            FetchError: network failure, timeout, or a body over `max_bytes`.
        """
        if not url.startswith(("http://", "https://")):
            raise FetchError(f"refusing to fetch {url!r}: only http(s) URLs")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url, headers={"User-Agent": USER_AGENT, "Accept": "*/*"}, method="GET"
        )
        deadline = time.monotonic() + self._timeout
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                length = response.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) > max_bytes:
                    raise FetchError(f"{url}: Content-Length {length} over the cap of {max_bytes}")
                chunks, total = [], 0
                while True:
                    if time.monotonic() > deadline:
                        raise FetchError(f"{url}: no complete answer within {self._timeout:.0f}s")
                    chunk = response.read(min(65536, max_bytes + 1 - total))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    total += len(chunk)
                    if total > max_bytes:
                        raise FetchError(f"{url}: body over the cap of {max_bytes} bytes")
                return b"".join(chunks)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise HttpStatusError(f"{url}: HTTP {exc.code}", exc.code) from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise FetchError(f"failed to fetch {url}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """What an update did."""

    installed_version: int
    changed: bool
    bundle_dir: Path


class Updater:
    """Keeps a verified bundle installed under `install_dir`, fetched from a registry service."""

    def __init__(
        self,
        server_url: str,
        install_dir: Path | str,
        *,
        trusted_keys: Sequence[PublicKeyLike],
        trusted_root: bytes | str | os.PathLike[str] | None = None,
        channel: str = "stable",
        fetcher: Fetcher | None = None,
        config: UpdaterConfig | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Set up an updater (nothing is fetched yet).

        Args:
            server_url: The registry service, e.g. ``https://models.example.com``.
            install_dir: Where bundles, the `current` pointer and the TUF cache live.
            trusted_keys: Public keys of the bundle manifest's signers (`signing.pub`).
            trusted_root: The registry's TUF `root.json` (bytes or a path), shipped with the
                app; None uses the signed manifest alone (see the module docstring).
            channel: The channel to follow (`stable`, `beta`, ...).
            fetcher: The network; an `HttpFetcher` when None. Unless it is a `LedgerFetcher`,
                every request also goes into `network-ledger.jsonl` in `install_dir`.
            config: Caps and deadlines.
            monotonic: The clock of the total deadline (tests pass a fake one).

        Raises:
            ValueError, TypeError: A key or the trusted root is unusable, or `server_url` is
                not a plain http(s) URL (credentials, a query or a fragment identify someone).
        """
        _check_server_url(server_url)
        self._base = server_url.rstrip("/")
        self._dir = Path(install_dir)
        self._keys = load_trusted_keys(trusted_keys)
        self._root = None if trusted_root is None else read_trusted_root(trusted_root)
        self._channel = channel
        self._config = config or UpdaterConfig()
        inner = fetcher or HttpFetcher(timeout_seconds=self._config.timeout_seconds)
        self._fetcher = (
            inner
            if isinstance(inner, LedgerFetcher)
            else LedgerFetcher(inner, FileLedger(self._dir / LEDGER_FILE))
        )
        self._monotonic = monotonic

    def network_ledger(self) -> list[LedgerEntry]:
        """Every request this updater's ledger holds, oldest first: URL, bytes, time, outcome.

        Raises:
            StoreError: the ledger cannot be read.
        """
        return self._fetcher.ledger.entries()

    def current_bundle_dir(self) -> Path | None:
        """The installed bundle's directory, or None before the first successful update."""
        try:
            pointer = json.loads((self._dir / _POINTER).read_text("utf-8"))
            path = self._dir / str(pointer["bundle"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return path if path.is_dir() else None

    def installed_version(self, *, now: datetime | None = None) -> int | None:
        """The version of the installed bundle, re-verified; None if nothing valid is installed."""
        path = self.current_bundle_dir()
        if path is None:
            return None
        try:
            bundle = read_bundle(
                path, self._keys, now=now, max_file_bytes=self._config.max_file_bytes
            )
        except BundleError:
            logger.warning("installed bundle at %s no longer verifies", path.name)
            return None
        return bundle.manifest.model_version

    def update(self, *, now: datetime | None = None) -> UpdateResult:
        """Fetch, verify and install the channel's latest bundle if it is newer.

        Raises:
            FetchError: a download failed, was oversized or ran past the deadline; the
                installed bundle stays.
            BundleError: the metadata or the bundle failed a check (`SignatureError`,
                `RollbackError`, `ExpiredBundleError`, `DigestMismatchError`, `MetadataError`,
                `FormatError`); the installed bundle stays.
        """
        now = now or datetime.now(timezone.utc)
        if self._root is not None:
            return self._update_with_tuf(now)
        return self._update_from_manifest(now)

    def _update_with_tuf(self, now: datetime) -> UpdateResult:
        view = TufView(
            self._base,
            self._dir / _TUF_DIR,
            self._root or b"",
            self._fetcher,
            now=now,
            deadline_seconds=self._config.deadline_seconds,
            monotonic=self._monotonic,
        )
        view.refresh()
        manifest_info = view.target(f"{self._channel}/{MANIFEST_FILE}")
        signature_info = view.target(f"{self._channel}/{SIGNATURE_FILE}")
        if manifest_info is None or signature_info is None:
            raise FetchError(f"channel {self._channel!r} has no release in the update metadata")
        current = self.current_bundle_dir()
        if current is not None and _file_sha256(current / MANIFEST_FILE) == (
            manifest_info.hashes.get("sha256")
        ):
            manifest = verify_manifest(
                (current / MANIFEST_FILE).read_bytes(),
                (current / SIGNATURE_FILE).read_bytes(),
                self._keys,
                now=now,
            )
            return UpdateResult(manifest.model_version, changed=False, bundle_dir=current)
        self._dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self._dir))
        try:
            manifest = verify_manifest(
                view.download(manifest_info, staging / MANIFEST_FILE),
                view.download(signature_info, staging / SIGNATURE_FILE),
                self._keys,
                now=now,
                installed_version=self.installed_version(now=now),
            )
            for name, entry in manifest.files.items():
                info = view.target(f"{self._channel}/{name}")
                if info is None or (info.length, info.hashes.get("sha256")) != (
                    entry.size,
                    entry.sha256,
                ):
                    raise DigestMismatchError(
                        f"file {name!r}: the update metadata and the signed manifest disagree"
                    )
                if entry.size > self._config.max_file_bytes:
                    raise FetchError(f"file {name!r} is {entry.size} bytes, over the cap")
                verify_file(manifest, name, view.download(info, staging / name))
            return self._install_staged(staging, manifest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _update_from_manifest(self, now: datetime) -> UpdateResult:
        base = f"{self._base}/v1/channels/{self._channel}"
        manifest_bytes = self._fetcher.fetch(
            f"{base}/{MANIFEST_FILE}", max_bytes=MAX_MANIFEST_BYTES
        )
        signature_bytes = self._fetcher.fetch(
            f"{base}/{SIGNATURE_FILE}", max_bytes=MAX_SIGNATURE_BYTES
        )
        current = self.current_bundle_dir()
        if current is not None and (current / MANIFEST_FILE).read_bytes() == manifest_bytes:
            version = verify_manifest(
                manifest_bytes, signature_bytes, self._keys, now=now
            ).model_version
            return UpdateResult(version, changed=False, bundle_dir=current)
        manifest = verify_manifest(
            manifest_bytes,
            signature_bytes,
            self._keys,
            now=now,
            installed_version=self.installed_version(now=now),
        )
        files: dict[str, bytes] = {}
        for name, entry in manifest.files.items():
            if entry.size > self._config.max_file_bytes:
                raise FetchError(f"file {name!r} is {entry.size} bytes, over the cap")
            data = self._fetcher.fetch(
                f"{self._base}/v1/blobs/{entry.sha256}", max_bytes=entry.size
            )
            verify_file(manifest, name, data)
            files[name] = data
        files[MANIFEST_FILE], files[SIGNATURE_FILE] = manifest_bytes, signature_bytes
        self._dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self._dir))
        try:
            for file_name, data in files.items():
                with (staging / file_name).open("wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            return self._install_staged(staging, manifest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _install_staged(self, staging: Path, manifest: Manifest) -> UpdateResult:
        """Move a complete, fsynced staging directory into place and point `current` at it."""
        name = f"v{manifest.model_version}-{manifest.digest[:12]}"
        target = self._dir / name
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        self._write_pointer(name)
        self._prune(keep=name)
        logger.info("installed bundle v%d (%s)", manifest.model_version, manifest.digest[:12])
        return UpdateResult(manifest.model_version, changed=True, bundle_dir=target)

    def _write_pointer(self, name: str) -> None:
        tmp = self._dir / f".{_POINTER}.tmp"
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump({"bundle": name}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._dir / _POINTER)

    def _prune(self, *, keep: str) -> None:
        bundles = sorted(
            (p for p in self._dir.iterdir() if p.is_dir() and p.name.startswith("v")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        survivors = [p for p in bundles if p.name == keep] + [p for p in bundles if p.name != keep]
        for old in survivors[self._config.keep_bundles :]:
            shutil.rmtree(old, ignore_errors=True)


def _check_server_url(url: str) -> None:
    if not isinstance(url, str):
        raise TypeError(f"server_url must be a str, not {type(url).__name__}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"server_url must be an http(s) URL with a host, found {url!r}")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ValueError(
            "server_url must carry no credentials, query or fragment: every device sends the "
            "same requests"
        )


def _file_sha256(path: Path) -> str | None:
    """The sha256 of a small file (an installed manifest), or None if it cannot be read."""
    try:
        with path.open("rb") as handle:
            return sha256_hex(handle.read(MAX_MANIFEST_BYTES + 1))
    except OSError:
        return None
