"""Step "fetch/verify/install": bring a newer bundle from the service onto the device, safely.

1. download the manifest and its signature under size caps (the same URLs for every device);
2. verify them (`verify_manifest`): signature, format, newer version, not expired;
3. download every listed file by its sha256 under its listed size, and check it;
4. write it all into a temporary directory beside the installed bundles, fsync, `os.replace`
   it into place, then atomically move the `current` pointer.

A failure at any step raises and leaves the last good bundle installed and in use. Requests
carry no cookies, credentials, Referer or identifiers: only a fixed User-Agent.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from ._crypto import PublicKeyLike
from .bundle import MANIFEST_FILE, SIGNATURE_FILE, load_trusted_keys, read_bundle
from .errors import BundleError, FetchError
from .verify import MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES, verify_file, verify_manifest

logger = logging.getLogger(__name__)

USER_AGENT = "facetwo-sdk"
"""The same for every device and version: it identifies nobody."""
_POINTER = "current.json"


class Fetcher(Protocol):
    """Fetches public bytes. Implementations must send nothing that identifies the device."""

    def fetch(self, url: str, *, max_bytes: int) -> bytes:
        """GET `url`; raise FetchError on failure or when the body exceeds `max_bytes`."""
        ...


@dataclass(frozen=True, slots=True)
class UpdaterConfig:
    """Caps and deadlines of one update."""

    max_file_bytes: int = 512 * 1024 * 1024
    timeout_seconds: float = 30.0
    keep_bundles: int = 2

    def __post_init__(self) -> None:
        if self.max_file_bytes < 1:
            raise ValueError(f"max_file_bytes must be >= 1, found {self.max_file_bytes}")
        if not 0 < self.timeout_seconds <= 3600:
            raise ValueError(f"timeout_seconds must be in (0, 3600], found {self.timeout_seconds}")
        if self.keep_bundles < 1:
            raise ValueError(f"keep_bundles must be >= 1, found {self.keep_bundles}")


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
            FetchError: network failure, non-200 status, timeout, or a body over `max_bytes`.
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
            raise FetchError(f"{url}: HTTP {exc.code}") from exc
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
        channel: str = "stable",
        fetcher: Fetcher | None = None,
        config: UpdaterConfig | None = None,
    ) -> None:
        self._base = server_url.rstrip("/")
        self._dir = Path(install_dir)
        self._keys = load_trusted_keys(trusted_keys)
        self._channel = channel
        self._config = config or UpdaterConfig()
        self._fetcher = fetcher or HttpFetcher(timeout_seconds=self._config.timeout_seconds)

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
            FetchError: a download failed; the installed bundle stays.
            BundleError: the offered bundle failed a check; the installed bundle stays.
        """
        now = now or datetime.now(timezone.utc)
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
        target = self._install(files, f"v{manifest.model_version}-{manifest.digest[:12]}")
        logger.info("installed bundle v%d (%s)", manifest.model_version, manifest.digest[:12])
        return UpdateResult(manifest.model_version, changed=True, bundle_dir=target)

    def _install(self, files: dict[str, bytes], name: str) -> Path:
        self._dir.mkdir(parents=True, exist_ok=True)
        target = self._dir / name
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self._dir))
        try:
            for file_name, data in files.items():
                with (staging / file_name).open("wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
            self._write_pointer(name)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._prune(keep=name)
        return target

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
