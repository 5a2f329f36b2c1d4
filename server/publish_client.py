"""`facetwo publish`: upload a bundle directory to a running registry over its admin API.

Every file the manifest lists, the manifest and its signature are streamed with
``PUT /v1/admin/blobs/<sha256>`` (the server checks each digest), then
``POST /v1/admin/channels/<channel>/releases`` releases them atomically. Both steps are
idempotent, so an interrupted publish can simply be run again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from server.errors import ServerError
from server.manifests import (
    MANIFEST_NAME,
    MAX_SIGNATURE_BYTES,
    SIGNATURE_NAME,
    parse_manifest,
    read_capped,
)

__all__ = ["publish_bundle_over_http"]

logger = logging.getLogger(__name__)

_TIMEOUT_SECONDS = 300.0
_MAX_MANIFEST_BYTES = 1_000_000
_MAX_ANSWER_BYTES = 1_000_000


def publish_bundle_over_http(
    bundle_dir: Path, server_url: str, *, token: str, channel: str = "stable"
) -> dict[str, Any]:
    """Upload and release a bundle.

    Args:
        bundle_dir: The bundle directory (``manifest.json``, ``manifest.sig`` and its files).
        server_url: The registry service, e.g. ``http://127.0.0.1:8080``.
        token: An admin bearer token.
        channel: The channel to publish on.

    Returns:
        The release as the server describes it.

    Raises:
        ServerError: The bundle is malformed, or the server refused a step (the message
            carries its error code and message).
    """
    if not server_url.startswith(("http://", "https://")):
        raise ServerError(f"--server: expected an http(s) URL, got {server_url!r}")
    base = server_url.rstrip("/")
    manifest_path = bundle_dir / MANIFEST_NAME
    manifest = parse_manifest(read_capped(manifest_path, _MAX_MANIFEST_BYTES), str(manifest_path))
    read_capped(bundle_dir / SIGNATURE_NAME, MAX_SIGNATURE_BYTES)
    uploads = [(name, digest) for name, (digest, _size) in sorted(manifest.files.items())]
    digests: dict[str, str] = {}
    for name in (MANIFEST_NAME, SIGNATURE_NAME):
        digests[name] = _file_digest(bundle_dir / name)
        uploads.append((name, digests[name]))
    opener = _opener()
    for name, digest in uploads:
        path = bundle_dir / name
        with path.open("rb") as body:
            _call(
                opener,
                "PUT",
                f"{base}/v1/admin/blobs/{digest}",
                token,
                body,
                {"Content-Length": str(path.stat().st_size)},
            )
        logger.info("uploaded %s (%s)", name, digest[:12])
    answer = _call(
        opener,
        "POST",
        f"{base}/v1/admin/channels/{channel}/releases",
        token,
        json.dumps(
            {"manifest_sha256": digests[MANIFEST_NAME], "signature_sha256": digests[SIGNATURE_NAME]}
        ).encode("utf-8"),
        {"Content-Type": "application/json"},
    )
    release: dict[str, Any] = answer["release"]
    return release


def _file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def _call(
    opener: urllib.request.OpenerDirector,
    method: str,
    url: str,
    token: str,
    body: Any,
    headers: dict[str, str],
) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - http(s) checked by the caller
        url,
        data=body,
        method=method,
        headers={"Authorization": f"Bearer {token}", "User-Agent": "facetwo-publish", **headers},
    )
    try:
        with opener.open(request, timeout=_TIMEOUT_SECONDS) as response:
            answer = json.loads(response.read(_MAX_ANSWER_BYTES))
    except urllib.error.HTTPError as exc:
        with exc:
            raise ServerError(f"{method} {url}: HTTP {exc.code}: {_error_text(exc)}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ServerError(f"{method} {url}: {exc}") from exc
    if not isinstance(answer, dict):
        raise ServerError(f"{method} {url}: expected a JSON object")
    return answer


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        error = json.loads(exc.read(_MAX_ANSWER_BYTES))["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return exc.reason if isinstance(exc.reason, str) else "no details"


def _opener() -> urllib.request.OpenerDirector:
    """No proxies from the environment and no redirects: the admin token is sent to the URL
    given and nowhere else (urllib would copy it onto a redirected request)."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener
