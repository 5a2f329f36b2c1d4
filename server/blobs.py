"""Content-addressed blob storage for the registry (the "store bytes" part of publish).

Every blob lives at ``root/sha256/<first two hex digits>/<64 hex digits>``; its name is the
SHA-256 of its bytes, so a blob is immutable and storing the same bytes twice is a no-op.

Guarantees:

- A blob file is either absent or complete: bytes are streamed into a temporary file in the
  same directory, fsynced, and renamed into place with ``os.replace``.
- ``put_file`` checks the digest and size it was promised while it copies and stops reading as
  soon as a file grows past its expected size; on a mismatch nothing is stored.
- ``path_for`` accepts only 64 lowercase hex digits, so a digest can never name a path outside
  the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from server.errors import PayloadTooLargeError, ServerError

__all__ = ["BlobStore", "is_sha256_hex"]

logger = logging.getLogger(__name__)

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_CHUNK_BYTES = 1 << 20
_TEMP_PREFIX = ".tmp-"


def is_sha256_hex(value: object) -> bool:
    """Tell whether ``value`` is a SHA-256 digest written as 64 lowercase hex digits.

    Args:
        value: Anything.

    Returns:
        True for a well-formed digest string, False otherwise.
    """
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None


class BlobStore:
    """Immutable blobs named by their SHA-256, stored under one root directory."""

    def __init__(self, root: Path) -> None:
        """Open (and create if needed) a blob store.

        Args:
            root: Directory of the store.

        Raises:
            OSError: The directory cannot be created.
        """
        # Absolute, so that serving a file never depends on the working directory (Flask's
        # send_file resolves relative paths against the application's package).
        self._root = root.resolve()
        self._objects = self._root / "sha256"
        self._objects.mkdir(parents=True, exist_ok=True)

    @property
    def root(self) -> Path:
        """The store's root directory."""
        return self._root

    def path_for(self, digest: str) -> Path:
        """Return where the blob named ``digest`` lives (whether or not it exists).

        Args:
            digest: SHA-256 as 64 lowercase hex digits.

        Returns:
            The blob's path.

        Raises:
            ValueError: ``digest`` is not 64 lowercase hex digits.
        """
        if not is_sha256_hex(digest):
            raise ValueError(f"not a sha256 digest (64 lowercase hex digits): {digest!r}")
        return self._objects / digest[:2] / digest

    def has(self, digest: str) -> bool:
        """Tell whether the blob is stored.

        Args:
            digest: SHA-256 as 64 lowercase hex digits.

        Returns:
            True when the blob exists.

        Raises:
            ValueError: ``digest`` is malformed.
        """
        return self.path_for(digest).is_file()

    def open(self, digest: str) -> BinaryIO:
        """Open a stored blob for reading; the caller closes it.

        Args:
            digest: SHA-256 as 64 lowercase hex digits.

        Returns:
            A binary file object positioned at the start.

        Raises:
            ValueError: ``digest`` is malformed.
            FileNotFoundError: No such blob.
        """
        return self.path_for(digest).open("rb")

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` and return its digest.

        Args:
            data: The blob's bytes.

        Returns:
            The SHA-256 of ``data`` as lowercase hex.

        Raises:
            OSError: Writing failed; nothing partial is left under the blob's name.
        """
        digest = hashlib.sha256(data).hexdigest()
        final = self.path_for(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp_path, out = _create_temp(final.parent)
        try:
            with out:
                out.write(data)
                _flush_to_disk(out)
            _install(temp_path, final)
        except BaseException:
            _discard(temp_path)
            raise
        logger.debug("stored blob %s (%d bytes)", digest[:12], len(data))
        return digest

    def put_file(
        self,
        path: Path,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
    ) -> str:
        """Copy a file into the store, streaming it in chunks, and return its digest.

        Args:
            path: The file to copy.
            expected_sha256: When given, the file must have this digest.
            expected_size: When given, the file must have exactly this many bytes; reading stops
                as soon as it has more.

        Returns:
            The SHA-256 of the file as lowercase hex.

        Raises:
            ValueError: ``expected_sha256`` is malformed or ``expected_size`` is negative.
            ServerError: The file's digest or size differs from the expected one (the message
                names the file, the expected and the found value); nothing is stored.
            OSError: The file cannot be read or the blob cannot be written.
        """
        if expected_sha256 is not None and not is_sha256_hex(expected_sha256):
            raise ValueError(f"expected_sha256: not a sha256 digest: {expected_sha256!r}")
        if expected_size is not None and expected_size < 0:
            raise ValueError(f"expected_size: must be >= 0, got {expected_size}")
        # With a known digest the temp file goes straight into the final directory; otherwise
        # into the objects directory, which is on the same filesystem, so os.replace is atomic.
        if expected_sha256 is not None:
            temp_dir = self.path_for(expected_sha256).parent
            temp_dir.mkdir(parents=True, exist_ok=True)
        else:
            temp_dir = self._objects
        with path.open("rb") as source:
            digest, size = self._ingest(
                lambda out: _copy_checked(source, out, path, expected_size),
                temp_dir,
                expected_sha256,
                str(path),
            )
        logger.debug("stored blob %s (%d bytes) from %s", digest[:12], size, path.name)
        return digest

    def put_stream(
        self, source: BinaryIO, *, max_bytes: int, expected_sha256: str | None = None
    ) -> tuple[str, int]:
        """Store everything read from ``source`` (an upload), refusing more than ``max_bytes``.

        Args:
            source: A readable binary stream; read in chunks until it ends.
            max_bytes: The largest blob accepted; reading stops at the first byte past it.
            expected_sha256: When given, the bytes must have this digest.

        Returns:
            ``(sha256 hex, size in bytes)`` of the stored blob.

        Raises:
            ValueError: ``max_bytes`` < 0 or ``expected_sha256`` is malformed.
            PayloadTooLargeError: The stream holds more than ``max_bytes``; nothing is stored.
            ServerError: The digest differs from ``expected_sha256``; nothing is stored.
            OSError: The blob cannot be written.
        """
        if max_bytes < 0:
            raise ValueError(f"max_bytes: must be >= 0, got {max_bytes}")
        if expected_sha256 is not None and not is_sha256_hex(expected_sha256):
            raise ValueError(f"expected_sha256: not a sha256 digest: {expected_sha256!r}")

        def copy(out: BinaryIO) -> tuple[str, int]:
            hasher, size = hashlib.sha256(), 0
            while chunk := source.read(_CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLargeError(f"upload is larger than the limit of {max_bytes}")
                hasher.update(chunk)
                out.write(chunk)
            return hasher.hexdigest(), size

        digest, size = self._ingest(copy, self._objects, expected_sha256, "upload")
        logger.debug("stored uploaded blob %s (%d bytes)", digest[:12], size)
        return digest, size

    def _ingest(
        self,
        copy: Callable[[BinaryIO], tuple[str, int]],
        temp_dir: Path,
        expected_sha256: str | None,
        label: str,
    ) -> tuple[str, int]:
        """Write through `copy` into a temp file in `temp_dir`, check the digest, flush, and move
        it into place; on any failure nothing is stored."""
        temp_path, out = _create_temp(temp_dir)
        try:
            with out:
                digest, size = copy(out)
                if expected_sha256 is not None and digest != expected_sha256:
                    raise ServerError(
                        f"{label}: sha256 mismatch: expected {expected_sha256}, found {digest}"
                    )
                _flush_to_disk(out)
            final = self.path_for(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            _install(temp_path, final)
        except BaseException:
            _discard(temp_path)
            raise
        return digest, size

    def size(self, digest: str) -> int:
        """Return a stored blob's size in bytes.

        Raises:
            ValueError: ``digest`` is malformed.
            FileNotFoundError: No such blob.
        """
        return self.path_for(digest).stat().st_size


def _copy_checked(
    source: BinaryIO, out: BinaryIO, path: Path, expected_size: int | None
) -> tuple[str, int]:
    """Copy ``source`` to ``out`` in chunks; return ``(sha256 hex, size)``.

    Raises:
        ServerError: The size differs from ``expected_size``; reading stops at the first byte
            past it, so an oversized file is never read whole.
    """
    hasher = hashlib.sha256()
    size = 0
    while chunk := source.read(_CHUNK_BYTES):
        size += len(chunk)
        if expected_size is not None and size > expected_size:
            raise ServerError(
                f"{path}: size mismatch: expected {expected_size} bytes, "
                f"found more than {expected_size}"
            )
        hasher.update(chunk)
        out.write(chunk)
    if expected_size is not None and size != expected_size:
        raise ServerError(f"{path}: size mismatch: expected {expected_size} bytes, found {size}")
    return hasher.hexdigest(), size


def _create_temp(directory: Path) -> tuple[Path, BinaryIO]:
    """Create a new, private temp file in ``directory``; return its path and open handle."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=_TEMP_PREFIX, suffix=".part")
    return Path(name), os.fdopen(fd, "wb")


def _flush_to_disk(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())


def _install(temp_path: Path, final: Path) -> None:
    """Atomically rename a complete temp file to its blob name and make the rename durable."""
    os.replace(temp_path, final)
    _fsync_directory(final.parent)


def _discard(temp_path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        temp_path.unlink()


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)
