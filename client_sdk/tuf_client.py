"""Step "fetch/verify" on the device: the update metadata, checked by python-tuf's ngclient.

The registry publishes TUF metadata (root, timestamp, snapshot, targets) for every channel.
`TufView` runs ngclient's client workflow over it, so the protections TUF is built for hold:
arbitrary payloads and tampering (length and sha256 of every file are signed), rollback and
fast-forward (versions only go up), freeze (every file expires), mix-and-match (the snapshot
pins the targets version), endless data (every download is capped by a signed length) and key
compromise (threshold signatures and root rotation).

The network goes through the SDK's own `Fetcher` (no cookies, credentials, Referer or
identifying User-Agent), adapted to ngclient's `FetcherInterface` with one total deadline for
the whole update. ngclient's exceptions are translated into `client_sdk.errors` at this boundary.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import TargetFile
from tuf.ngclient import FetcherInterface
from tuf.ngclient import Updater as NgUpdater
from tuf.ngclient import UpdaterConfig as NgConfig

from .errors import (
    DigestMismatchError,
    ExpiredBundleError,
    FetchError,
    HttpStatusError,
    MetadataError,
    RollbackError,
    SignatureError,
)

logger = logging.getLogger(__name__)

METADATA_PATH = "/v1/metadata/"
TARGETS_PATH = "/v1/targets/"
MAX_ROOT_BYTES = 512_000


class _Fetcher(Protocol):
    def fetch(self, url: str, *, max_bytes: int) -> bytes: ...


def read_trusted_root(root: bytes | str | os.PathLike[str]) -> bytes:
    """The trusted root metadata's bytes, from bytes or a path to `root.json`.

    Raises:
        TypeError: `root` is of another type.
        ValueError: The file cannot be read or is over the size cap.
    """
    if isinstance(root, bytes):
        data = root
    elif isinstance(root, (str, os.PathLike)):
        try:
            with Path(root).open("rb") as handle:
                data = handle.read(MAX_ROOT_BYTES + 1)
        except OSError as exc:
            raise ValueError(f"trusted_root: cannot read {root}: {exc.strerror}") from exc
    else:
        raise TypeError(f"trusted_root must be bytes or a path, not {type(root).__name__}")
    if len(data) > MAX_ROOT_BYTES:
        raise ValueError(f"trusted_root is over the cap of {MAX_ROOT_BYTES} bytes")
    return data


class _DeadlineFetcher(FetcherInterface):
    """ngclient's fetcher interface over the SDK's `Fetcher`, under one total deadline."""

    def __init__(
        self, fetcher: _Fetcher, *, deadline: float, monotonic: Callable[[], float]
    ) -> None:
        self._fetcher = fetcher
        self._deadline = deadline
        self._monotonic = monotonic

    def _fetch(self, url: str) -> Iterator[bytes]:  # pragma: no cover - ngclient uses the others
        raise tuf_errors.DownloadError(f"{url}: downloads need a length cap")

    def download_bytes(self, url: str, max_length: int) -> bytes:
        if self._monotonic() >= self._deadline:
            raise tuf_errors.SlowRetrievalError("the update ran past its total deadline")
        try:
            data = self._fetcher.fetch(url, max_bytes=max_length)
        except HttpStatusError as exc:
            raise tuf_errors.DownloadHTTPError(str(exc), exc.status_code) from exc
        except FetchError as exc:
            raise tuf_errors.DownloadError(str(exc)) from exc
        if len(data) > max_length:
            raise tuf_errors.DownloadLengthMismatchError(
                f"{url}: {len(data)} bytes, over the signed length {max_length}"
            )
        if self._monotonic() >= self._deadline:
            raise tuf_errors.SlowRetrievalError("the update ran past its total deadline")
        return data

    @contextlib.contextmanager
    def download_file(self, url: str, max_length: int) -> Iterator[IO[bytes]]:
        yield io.BytesIO(self.download_bytes(url, max_length))


@contextlib.contextmanager
def translate_tuf_errors() -> Iterator[None]:
    """Re-raise ngclient's errors as the SDK's own, naming the failed check.

    Raises:
        SignatureError: Too few valid signatures by trusted keys (wrong key, stripped
            signature, threshold not met).
        ExpiredBundleError: Expired metadata (freeze).
        RollbackError: A version went down or disagrees with the signed one (rollback,
            mix-and-match).
        DigestMismatchError: A file's length or sha256 differs from the signed one.
        MetadataError: Any other refusal of the metadata (malformed, inconsistent).
        FetchError: A download failed, was oversized or ran past the deadline.
    """
    try:
        yield
    except tuf_errors.UnsignedMetadataError as exc:
        raise SignatureError(f"update metadata: {exc}") from exc
    except tuf_errors.ExpiredMetadataError as exc:
        raise ExpiredBundleError(f"update metadata: {exc}") from exc
    except tuf_errors.BadVersionNumberError as exc:
        raise RollbackError(f"update metadata: {exc or 'version went down'}") from exc
    except tuf_errors.LengthOrHashMismatchError as exc:
        raise DigestMismatchError(f"update metadata: {exc}") from exc
    except tuf_errors.RepositoryError as exc:
        raise MetadataError(f"update metadata: {exc}") from exc
    except tuf_errors.DownloadError as exc:
        cause = exc.__cause__
        if isinstance(cause, HttpStatusError):
            raise HttpStatusError(str(cause), cause.status_code) from exc
        raise FetchError(f"update download failed: {exc}") from exc


class TufView:
    """One update's verified view of the registry's TUF repository."""

    def __init__(
        self,
        server_url: str,
        metadata_dir: Path,
        trusted_root: bytes,
        fetcher: _Fetcher,
        *,
        now: datetime,
        deadline_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Load the trusted root (and any newer roots cached in `metadata_dir`).

        Raises:
            MetadataError: The trusted root is not valid TUF root metadata.
            ValueError: `now` is naive.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        metadata_dir.mkdir(parents=True, exist_ok=True)
        adapter = _DeadlineFetcher(
            fetcher, deadline=monotonic() + deadline_seconds, monotonic=monotonic
        )
        base = server_url.rstrip("/")
        with translate_tuf_errors():
            self._updater = NgUpdater(
                str(metadata_dir),
                f"{base}{METADATA_PATH}",
                target_base_url=f"{base}{TARGETS_PATH}",
                fetcher=adapter,
                config=NgConfig(prefix_targets_with_hash=True),
                bootstrap=trusted_root,
            )
        _pin_reference_time(self._updater, now)

    def refresh(self) -> None:
        """Fetch and verify root (following rotations), timestamp, snapshot and targets.

        Raises:
            SignatureError, ExpiredBundleError, RollbackError, DigestMismatchError,
            MetadataError, FetchError: see `translate_tuf_errors`.
        """
        with translate_tuf_errors():
            self._updater.refresh()

    def target(self, path: str) -> TargetFile | None:
        """The signed length and hashes of one target, or None if the targets do not list it.

        Raises:
            The errors of `refresh`.
        """
        with translate_tuf_errors():
            return self._updater.get_targetinfo(path)

    def download(self, info: TargetFile, destination: Path) -> bytes:
        """Download a target into `destination`, checked against its signed length and sha256.

        Returns:
            The verified bytes.

        Raises:
            DigestMismatchError: The bytes differ from the signed length or hash.
            FetchError: The download failed, was oversized or ran past the deadline.
        """
        with translate_tuf_errors():
            self._updater.download_target(info, filepath=str(destination))
        with destination.open("rb") as handle:
            data = handle.read(info.length + 1)
            os.fsync(handle.fileno())  # it is about to be installed
        if len(data) != info.length:  # pragma: no cover - ngclient verified the length
            raise DigestMismatchError(f"target {info.path!r} changed on disk after download")
        return data


def _pin_reference_time(updater: NgUpdater, now: datetime) -> None:
    """Make ngclient judge expiry at `now` (the SDK's injectable clock) instead of its own.

    ngclient reads the clock once, when the updater is built; tuf>=7,<8 keeps it in
    `_trusted_set.reference_time`. Refuse to run rather than silently ignore the clock if a
    future python-tuf moves it.
    """
    trusted = getattr(updater, "_trusted_set", None)
    if trusted is None or not hasattr(trusted, "reference_time"):  # pragma: no cover
        raise RuntimeError("this python-tuf does not expose its reference time (need tuf 7.x)")
    trusted.reference_time = now
