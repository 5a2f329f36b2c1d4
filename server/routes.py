"""HTTP routes of the registry service: the public download side of publish -> fetch.

``routes.py`` only translates HTTP; ``registry.py`` knows releases and ``blobs.py`` bytes.

URL layout (all public, all GET/HEAD, the same bytes for every client):

- ``/healthz`` -> ``{"status": "ok"}``.
- ``/v1/channels/<channel>/manifest.json`` and ``/v1/channels/<channel>/manifest.sig``: the
  channel's latest release; ``Cache-Control: no-cache`` with a strong ETag (the sha256 of the
  bytes), so clients revalidate cheaply with ``If-None-Match``. Each response also names the
  digest of its partner (``Facetwo-Signature-Sha256`` / ``Facetwo-Manifest-Sha256``), so a client
  can fetch the matching half from ``/v1/blobs/`` even if a publish lands between its requests.
- ``/v1/blobs/<sha256>``: any blob some release references; immutable, cacheable for a year,
  with range support. Malformed digest -> 400, unknown -> 404.

Nothing here reads cookies, sessions, query strings or client identity.
"""

from __future__ import annotations

import logging

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
    "public",
]

logger = logging.getLogger(__name__)

REGISTRY_EXTENSION = "facetwo.registry"
"""Key of the app's :class:`Registry` in ``app.extensions``."""

BLOB_MAX_AGE_SECONDS = 31_536_000
"""Blobs are named by their content, so caches may keep them for a year."""

public = Blueprint("public", __name__)


def current_registry() -> Registry:
    """Return the registry of the app handling the current request.

    Returns:
        The app's registry.

    Raises:
        RuntimeError: The app was not built by ``create_app`` (no registry attached).
    """
    registry = current_app.extensions.get(REGISTRY_EXTENSION)
    if not isinstance(registry, Registry):
        raise RuntimeError("no registry attached to this app; build it with create_app()")
    return registry


@public.get("/healthz")
def healthz() -> Response:
    """Liveness probe.

    Returns:
        ``{"status": "ok"}``.
    """
    return jsonify(status="ok")


@public.get("/v1/channels/<channel>/manifest.json")
def channel_manifest(channel: str) -> Response:
    """Serve the latest release's ``manifest.json`` bytes.

    Args:
        channel: Channel name from the URL.

    Returns:
        The manifest (or 304 when ``If-None-Match`` matches).

    Raises:
        ApiError: 400 for an invalid channel name, 404 when the channel has no release.
    """
    release = _latest_release(channel)
    response = _small_blob_response(release.manifest_sha256, "application/json")
    response.headers["Facetwo-Signature-Sha256"] = release.signature_sha256
    return response.make_conditional(request)


@public.get("/v1/channels/<channel>/manifest.sig")
def channel_signature(channel: str) -> Response:
    """Serve the latest release's detached signature ``manifest.sig``.

    Args:
        channel: Channel name from the URL.

    Returns:
        The signature bytes (or 304 when ``If-None-Match`` matches).

    Raises:
        ApiError: 400 for an invalid channel name, 404 when the channel has no release.
    """
    release = _latest_release(channel)
    response = _small_blob_response(release.signature_sha256, "application/octet-stream")
    response.headers["Facetwo-Manifest-Sha256"] = release.manifest_sha256
    return response.make_conditional(request)


@public.get("/v1/blobs/<digest>")
def blob(digest: str) -> Response:
    """Stream one published blob by its sha256.

    Args:
        digest: SHA-256 from the URL, 64 lowercase hex digits.

    Returns:
        The bytes as ``application/octet-stream`` (304 on a matching ``If-None-Match``, 206
        for a satisfiable ``Range``).

    Raises:
        ApiError: 400 for a malformed digest, 404 for a blob no release references, 500 when
            a referenced blob is missing from disk.
    """
    if not is_sha256_hex(digest):
        raise ApiError(400, "invalid_digest", "expected a sha256 digest: 64 lowercase hex digits")
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
    response.cache_control.public = True
    response.cache_control.max_age = BLOB_MAX_AGE_SECONDS
    response.cache_control.immutable = True
    return response


def _latest_release(channel: str) -> Release:
    if not is_valid_channel(channel):
        raise ApiError(400, "invalid_channel", "channel names match [a-z][a-z0-9-]{0,31}")
    release = current_registry().latest(channel)
    if release is None:
        raise ApiError(404, "unknown_channel", f"no release on channel {channel!r}")
    return release


def _small_blob_response(digest: str, mimetype: str) -> Response:
    """A revalidate-every-time response for a small blob (manifest sizes are capped)."""
    try:
        with current_registry().blobs.open(digest) as handle:
            data = handle.read()
    except FileNotFoundError:
        logger.error("published blob %s is missing from the store", digest[:12])
        raise ApiError(500, "blob_missing", "the release is published but unavailable") from None
    response = Response(data, mimetype=mimetype)
    response.set_etag(digest)
    response.cache_control.no_cache = True
    return response
