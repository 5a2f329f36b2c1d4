"""The admin API: upload and publish bundles, promote, roll back, datasets and training jobs.

Every route here sits under ``/v1/admin/`` and requires a bearer token (:mod:`server.auth`,
installed as this blueprint's ``before_request``). Uploads stream into the blob store under
``ServerConfig.max_upload_bytes``; other bodies are small JSON objects. Domain errors become
JSON errors: unknown things 404, stale versions 409, oversized uploads 413, invalid data 422,
missing signing keys 503.

Publishing a bundle over HTTP is two steps, both idempotent: ``PUT /v1/admin/blobs/<sha256>``
for each file, the manifest and its signature, then ``POST /v1/admin/channels/<channel>/releases``
with the two digests; the release (with its TUF metadata) appears atomically.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, BinaryIO, TypeVar, cast

from flask import Blueprint, current_app, jsonify, request
from werkzeug.wrappers import Response

from server.auth import require_admin
from server.blobs import is_sha256_hex
from server.datasets import list_datasets, save_dataset
from server.errors import (
    ApiError,
    ConflictError,
    DataError,
    KeyMaterialError,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
)
from server.jobs import JobRunner
from server.registry import Release, is_valid_channel
from server.routes import current_registry

__all__ = [
    "CLOCK_EXTENSION",
    "JOBS_EXTENSION",
    "UPLOAD_ENDPOINTS",
    "UPLOAD_LIMIT_EXTENSION",
    "admin",
]

logger = logging.getLogger(__name__)

JOBS_EXTENSION = "facetwo.jobs"
"""Key of the app's :class:`JobRunner` in ``app.extensions``."""
CLOCK_EXTENSION = "facetwo.clock"
"""Key of the app's clock (a callable returning an aware ``datetime``) in ``app.extensions``."""
UPLOAD_LIMIT_EXTENSION = "facetwo.max-upload-bytes"
UPLOAD_ENDPOINTS = frozenset({"admin.upload_blob", "admin.upload_dataset"})
"""Endpoints whose bodies may reach ``max_upload_bytes`` (others: ``max_request_bytes``)."""

_View = TypeVar("_View", bound=Callable[..., Any])
_STATUS = (
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (PayloadTooLargeError, 413, "payload_too_large"),
    (DataError, 422, "invalid_data"),
    (KeyMaterialError, 503, "signing_unavailable"),
    (ServerError, 422, "rejected"),
)

admin = Blueprint("admin", __name__, url_prefix="/v1/admin")
admin.before_request(require_admin)


def _api(view: _View) -> _View:
    """Turn domain errors (and argument errors) of a view into JSON API errors."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except ApiError:
            raise
        except ValueError as exc:
            raise ApiError(400, "invalid_argument", str(exc)) from exc
        except ServerError as exc:
            for kind, status, code in _STATUS:
                if isinstance(exc, kind):
                    raise ApiError(status, code, str(exc)) from exc
            raise  # pragma: no cover - ServerError closes the table

    return cast("_View", wrapper)


@admin.get("/channels")
@_api
def list_channels() -> Response:
    """Every channel with its latest version and release count."""
    registry = current_registry()
    channels = []
    for channel in registry.channels():
        releases = registry.releases(channel)
        channels.append(
            {"channel": channel, "latest": releases[0].model_version, "releases": len(releases)}
        )
    return jsonify(channels=channels)


@admin.get("/channels/<channel>/releases")
@_api
def list_releases(channel: str) -> Response:
    """Every release of a channel, newest first."""
    return jsonify(releases=[_release_json(r) for r in current_registry().releases(_ch(channel))])


@admin.post("/channels/<channel>/releases")
@_api
def publish(channel: str) -> tuple[Response, int]:
    """Release uploaded blobs: ``{"manifest_sha256", "signature_sha256"}``."""
    channel = _ch(channel)
    body = _json_object()
    release = current_registry().publish_uploaded(
        _digest(body, "manifest_sha256"),
        _digest(body, "signature_sha256"),
        channel=channel,
        now=_now(),
    )
    return jsonify(release=_release_json(release)), 201


@admin.post("/channels/<channel>/promote")
@_api
def promote(channel: str) -> tuple[Response, int]:
    """Publish another channel's release here: ``{"from": "beta", "model_version": N?}``."""
    body = _json_object()
    source = body.get("from")
    if not isinstance(source, str):
        raise ApiError(400, "invalid_argument", "field 'from': expected a channel name")
    version = _optional_int(body, "model_version")
    release = current_registry().promote(
        _ch(source), _ch(channel), model_version=version, now=_now()
    )
    return jsonify(release=_release_json(release)), 201


@admin.post("/channels/<channel>/rollback")
@_api
def rollback(channel: str) -> tuple[Response, int]:
    """Re-release an older version under the next number: ``{"to_version": N}``."""
    version = _optional_int(_json_object(), "to_version")
    if version is None:
        raise ApiError(400, "invalid_argument", "field 'to_version': expected an integer")
    release = current_registry().rollback(_ch(channel), version, now=_now())
    return jsonify(release=_release_json(release)), 201


@admin.put("/blobs/<digest>")
@_api
def upload_blob(digest: str) -> tuple[Response, int]:
    """Store one file of a bundle; its sha256 must match the URL."""
    if not is_sha256_hex(digest):
        raise ApiError(400, "invalid_digest", "expected a sha256 digest: 64 lowercase hex digits")
    stored, size = current_registry().blobs.put_stream(
        cast("BinaryIO", request.stream), max_bytes=_upload_limit(), expected_sha256=digest
    )
    return jsonify(sha256=stored, size=size), 201


@admin.post("/datasets")
@_api
def upload_dataset() -> tuple[Response, int]:
    """Upload a CSV (raw body); ``?kind=interactions|catalog&name=<file name>``."""
    dataset = save_dataset(
        current_registry(),
        cast("BinaryIO", request.stream),
        kind=request.args.get("kind", "interactions"),
        name=request.args.get("name", "upload.csv"),
        max_bytes=_upload_limit(),
        now=_now(),
    )
    return jsonify(dataset=dataset.to_json()), 201


@admin.get("/datasets")
@_api
def datasets() -> Response:
    """Every uploaded dataset, newest first."""
    return jsonify(datasets=[d.to_json() for d in list_datasets(current_registry())])


@admin.post("/jobs")
@_api
def start_job() -> tuple[Response, int]:
    """Start training: ``{"interactions": id, "catalog": id?, "channel": name?}``."""
    body = _json_object()
    interactions = _optional_int(body, "interactions")
    if interactions is None:
        raise ApiError(400, "invalid_argument", "field 'interactions': expected a dataset id")
    channel = body.get("channel")
    if channel is not None and not isinstance(channel, str):
        raise ApiError(400, "invalid_argument", "field 'channel': expected a channel name")
    job = _jobs().submit(
        interactions_id=interactions,
        catalog_id=_optional_int(body, "catalog"),
        channel=None if channel is None else _ch(channel),
    )
    return jsonify(job=job.to_json()), 202


@admin.get("/jobs/<int:job_id>")
@_api
def job_status(job_id: int) -> Response:
    """A job's status and log."""
    return jsonify(job=_jobs().get(job_id).to_json())


@admin.post("/metadata/refresh")
@_api
def refresh_metadata() -> Response:
    """Re-sign online TUF metadata that is due (for a cron job; ``serve`` does it itself)."""
    return jsonify(resigned=current_registry().refresh_metadata(now=_now()))


def _jobs() -> JobRunner:
    runner = current_app.extensions.get(JOBS_EXTENSION)
    if not isinstance(runner, JobRunner):
        raise RuntimeError("no job runner attached to this app; build it with create_app()")
    return runner


def _now() -> datetime:
    clock: Callable[[], datetime] = current_app.extensions[CLOCK_EXTENSION]
    return clock()


def _upload_limit() -> int:
    return int(current_app.extensions[UPLOAD_LIMIT_EXTENSION])


def _release_json(release: Release) -> dict[str, Any]:
    return {
        "channel": release.channel,
        "model_version": release.model_version,
        "manifest_sha256": release.manifest_sha256,
        "signature_sha256": release.signature_sha256,
        "files": {name: {"sha256": s, "size": n} for name, (s, n) in release.files.items()},
        "published_at": release.published_at.isoformat(),
    }


def _ch(channel: str) -> str:
    if not is_valid_channel(channel):
        raise ApiError(400, "invalid_channel", "channel names match [a-z][a-z0-9-]{0,31}")
    return channel


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "expected a JSON object body")
    return body


def _digest(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not is_sha256_hex(value):
        raise ApiError(400, "invalid_argument", f"field {field!r}: expected 64 lowercase hex")
    return cast("str", value)


def _optional_int(body: dict[str, Any], field: str) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiError(400, "invalid_argument", f"field {field!r}: expected an integer >= 1")
    return value
