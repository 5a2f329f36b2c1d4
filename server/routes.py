"""HTTP routes of the registry service: the public download side of publish -> fetch.

``routes.py`` only translates HTTP; ``registry.py`` knows releases and metadata, ``blobs.py``
bytes. URL layout (all public, all GET/HEAD, the same bytes for every client):

- ``/healthz`` -> ``{"status": "ok"}``.
- TUF metadata, as python-tuf's ngclient expects it under ``/v1/metadata/``:
  ``timestamp.json`` and ``root.json`` (the newest; ``Cache-Control: no-cache``, strong ETag =
  sha256 of the bytes, 304 on ``If-None-Match``) and ``<version>.<role>.json`` for root,
  snapshot and targets (immutable).
- TUF targets: ``/v1/targets/<channel>/<sha256>.<file name>`` -> the bundle file with that
  digest (immutable; ngclient prefixes target names with their hash).
- The signed bundle without TUF (for kiosks and simple mirrors):
  ``/v1/channels/<channel>/manifest.json`` and ``manifest.sig`` (the latest release; no-cache,
  ETag, 304; each names its partner's digest in ``Facetwo-Signature-Sha256`` /
  ``Facetwo-Manifest-Sha256``) and ``/v1/blobs/<sha256>`` (immutable, range support).

Immutable responses carry ``Cache-Control: public, max-age=31536000, immutable`` and a strong
ETag. Malformed names -> 400, unknown -> 404. Nothing here reads cookies, sessions, query
strings or client identity.
"""

from __future__ import annotations

import logging
import re
import threading

from flask import Blueprint, current_app, jsonify, request, send_file
from werkzeug.wrappers import Response

from server.blobs import is_sha256_hex
from server.errors import ApiError
from server.registry import Registry, Release, is_valid_channel

__all__ = [
    "BLOB_MAX_AGE_SECONDS",
    "REGISTRY_EXTENSION",
    "blob",
    "channel_manifest",
    "channel_signature",
    "current_registry",
    "healthz",
    "metadata",
    "public",
    "target",
]

logger = logging.getLogger(__name__)

REGISTRY_EXTENSION = "facetwo.registry"
"""Key of the app's :class:`Registry` in ``app.extensions``."""
_CACHE_EXTENSION = "facetwo.small-blobs"

BLOB_MAX_AGE_SECONDS = 31_536_000
"""Content-addressed responses never change, so caches may keep them for a year."""

_VERSIONED = re.compile(r"([1-9][0-9]{0,18})\.(root|snapshot|targets)\.json")
_TARGET = re.compile(r"([0-9a-f]{64})\.([A-Za-z0-9][A-Za-z0-9._-]{0,127})")
_SMALL_BLOB_BYTES = 1 << 20
_SMALL_BLOB_ENTRIES = 64

public = Blueprint("public", __name__)


def current_registry() -> Registry:
    """Return the registry of the app handling the current request.

    Raises:
        RuntimeError: The app was not built by ``create_app`` (no registry attached).
    """
    registry = current_app.extensions.get(REGISTRY_EXTENSION)
    if not isinstance(registry, Registry):
        raise RuntimeError("no registry attached to this app; build it with create_app()")
    return registry


@public.get("/healthz")
def healthz() -> Response:
    """Liveness probe: ``{"status": "ok"}``."""
    return jsonify(status="ok")


@public.get("/v1/metadata/<filename>")
def metadata(filename: str) -> Response:
    """Serve TUF metadata: the newest timestamp or root, or one version of a role.

    Raises:
        ApiError: 404 for an unknown file or version (ngclient reads a 404 for
            ``<N+1>.root.json`` as "no newer root").
    """
    registry = current_registry()
    if filename in ("timestamp.json", "root.json"):
        found = registry.current_metadata(filename.removesuffix(".json"))
        if found is None:
            raise ApiError(404, "unknown_metadata", f"no {filename} yet: no TUF root installed")
        return _revalidated(found[1], "application/json")
    match = _VERSIONED.fullmatch(filename)
    digest = None if match is None else registry.metadata_sha256(match[2], int(match[1]))
    if digest is None:
        raise ApiError(404, "unknown_metadata", f"no metadata file {filename!r}")
    return _immutable_small(digest, "application/json")


@public.get("/v1/targets/<channel>/<filename>")
def target(channel: str, filename: str) -> Response:
    """Serve a TUF target file named ``<sha256>.<file name>``.

    Raises:
        ApiError: 400 for a malformed channel or name, 404 for a blob no release references.
    """
    if not is_valid_channel(channel):
        raise ApiError(400, "invalid_channel", "channel names match [a-z][a-z0-9-]{0,31}")
    match = _TARGET.fullmatch(filename)
    if match is None:
        raise ApiError(400, "invalid_target", "expected <sha256>.<file name>")
    return _published_blob(match[1])


@public.get("/v1/channels/<channel>/manifest.json")
def channel_manifest(channel: str) -> Response:
    """Serve the latest release's ``manifest.json`` bytes (304 on a matching ETag).

    Raises:
        ApiError: 400 for an invalid channel name, 404 when the channel has no release.
    """
    release = _latest_release(channel)
    response = _revalidated(release.manifest_sha256, "application/json")
    response.headers["Facetwo-Signature-Sha256"] = release.signature_sha256
    return response


@public.get("/v1/channels/<channel>/manifest.sig")
def channel_signature(channel: str) -> Response:
    """Serve the latest release's detached signature ``manifest.sig`` (304 on a matching ETag).

    Raises:
        ApiError: 400 for an invalid channel name, 404 when the channel has no release.
    """
    release = _latest_release(channel)
    response = _revalidated(release.signature_sha256, "application/octet-stream")
    response.headers["Facetwo-Manifest-Sha256"] = release.manifest_sha256
    return response


@public.get("/v1/blobs/<digest>")
def blob(digest: str) -> Response:
    """Stream one published blob by its sha256 (304 on ETag, 206 for a ``Range``).

    Raises:
        ApiError: 400 for a malformed digest, 404 for a blob no release references, 500 when
            a referenced blob is missing from disk.
    """
    if not is_sha256_hex(digest):
        raise ApiError(400, "invalid_digest", "expected a sha256 digest: 64 lowercase hex digits")
    return _published_blob(digest)


def _published_blob(digest: str) -> Response:
    registry = current_registry()
    if not registry.is_published_blob(digest):
        raise ApiError(404, "unknown_blob", f"no published blob {digest}")
    try:
        response = send_file(
            registry.blobs.path_for(digest),
            mimetype="application/octet-stream",
            etag=digest,
            conditional=True,
            max_age=BLOB_MAX_AGE_SECONDS,
        )
    except FileNotFoundError:
        logger.error("published blob %s is missing from the store", digest[:12])
        raise ApiError(500, "blob_missing", "the blob is published but unavailable") from None
    _mark_immutable(response)
    return response


def _latest_release(channel: str) -> Release:
    if not is_valid_channel(channel):
        raise ApiError(400, "invalid_channel", "channel names match [a-z][a-z0-9-]{0,31}")
    release = current_registry().latest(channel)
    if release is None:
        raise ApiError(404, "unknown_channel", f"no release on channel {channel!r}")
    return release


def _revalidated(digest: str, mimetype: str) -> Response:
    """A small, changing file: ``no-cache`` with a strong ETag; 304 without reading it."""
    if request.if_none_match.contains(digest):
        response = Response(status=304)
    else:
        response = Response(_small_blob(digest), mimetype=mimetype)
    response.set_etag(digest)
    response.cache_control.no_cache = True
    return response


def _immutable_small(digest: str, mimetype: str) -> Response:
    if request.if_none_match.contains(digest):
        response = Response(status=304)
    else:
        response = Response(_small_blob(digest), mimetype=mimetype)
    response.set_etag(digest)
    _mark_immutable(response)
    return response


def _mark_immutable(response: Response) -> None:
    response.cache_control.public = True
    response.cache_control.max_age = BLOB_MAX_AGE_SECONDS
    response.cache_control.immutable = True


def _small_blob(digest: str) -> bytes:
    """Read a small blob (metadata, manifests), through a per-app cache: blobs never change."""
    cache: _SmallBlobCache = current_app.extensions.setdefault(_CACHE_EXTENSION, _SmallBlobCache())
    data = cache.get(digest)
    if data is not None:
        return data
    try:
        with current_registry().blobs.open(digest) as handle:
            data = bytes(handle.read())
    except FileNotFoundError:
        logger.error("published blob %s is missing from the store", digest[:12])
        raise ApiError(500, "blob_missing", "the release is published but unavailable") from None
    if len(data) <= _SMALL_BLOB_BYTES:
        cache.put(digest, data)
    return data


class _SmallBlobCache:
    """A bounded digest -> bytes map; content addressing makes invalidation unnecessary."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, bytes] = {}

    def get(self, digest: str) -> bytes | None:
        with self._lock:
            return self._items.get(digest)

    def put(self, digest: str, data: bytes) -> None:
        with self._lock:
            if len(self._items) >= _SMALL_BLOB_ENTRIES:
                self._items.pop(next(iter(self._items)))
            self._items[digest] = data
