"""The OpenAPI 3.1 document of the registry service, served at ``/openapi.json``.

Written by hand next to the routes; a test checks that every rule in ``app.url_map`` is
documented here with its methods, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from client_sdk import __version__

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/responses/Error"}
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_JSON_OBJECT = {"application/json": {"schema": {"type": "object"}}}


def _param(name: str, where: str = "path", kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": {"type": kind}}


def _op(
    summary: str,
    *,
    params: tuple[str, ...] = (),
    ok: str = "200",
    content: dict[str, Any] | None = None,
    body: dict[str, Any] | None = None,
    admin: bool = False,
    query: tuple[str, ...] = (),
    cached: bool = False,
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        ok: {"description": "success", "content": content or _JSON_OBJECT},
        "default": _ERROR,
    }
    if cached:
        responses["304"] = {"description": "not modified (If-None-Match matched the ETag)"}
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": [_param(p, kind="integer" if p == "job_id" else "string") for p in params]
        + [_param(q, "query") for q in query],
        "responses": responses,
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": body}
    if admin:
        operation["security"] = [{"bearer": []}]
        responses["401"] = _ERROR
    else:
        operation["security"] = []
    return operation


def openapi_document() -> dict[str, Any]:
    """Build the OpenAPI document.

    Returns:
        A JSON-serialisable OpenAPI 3.1 object.
    """
    admin: dict[str, Any] = {"admin": True}
    paths: dict[str, Any] = {
        "/healthz": {"get": _op("Liveness probe")},
        "/openapi.json": {"get": _op("This document")},
        "/v1/metadata/{filename}": {
            "get": _op(
                "TUF metadata: timestamp.json, root.json (newest, no-cache) or "
                "<version>.<root|snapshot|targets>.json (immutable)",
                params=("filename",),
                cached=True,
            )
        },
        "/v1/targets/{channel}/{filename}": {
            "get": _op(
                "A TUF target file, named <sha256>.<file name> (immutable)",
                params=("channel", "filename"),
                content=_BINARY,
                cached=True,
            )
        },
        "/v1/channels/{channel}/manifest.json": {
            "get": _op("Latest signed bundle manifest", params=("channel",), cached=True)
        },
        "/v1/channels/{channel}/manifest.sig": {
            "get": _op("Its detached signature", params=("channel",), content=_BINARY, cached=True)
        },
        "/v1/blobs/{digest}": {
            "get": _op(
                "A published file by sha256 (immutable)",
                params=("digest",),
                content=_BINARY,
                cached=True,
            )
        },
        "/v1/admin/channels": {"get": _op("Channels and their latest versions", **admin)},
        "/v1/admin/channels/{channel}/releases": {
            "get": _op("Releases of a channel, newest first", params=("channel",), **admin),
            "post": _op(
                "Release uploaded blobs {manifest_sha256, signature_sha256}",
                params=("channel",),
                ok="201",
                body=_JSON_OBJECT,
                **admin,
            ),
        },
        "/v1/admin/channels/{channel}/promote": {
            "post": _op(
                "Publish a release of another channel here {from, model_version?}",
                params=("channel",),
                ok="201",
                body=_JSON_OBJECT,
                **admin,
            )
        },
        "/v1/admin/channels/{channel}/rollback": {
            "post": _op(
                "Re-release an older version under the next number {to_version}",
                params=("channel",),
                ok="201",
                body=_JSON_OBJECT,
                **admin,
            )
        },
        "/v1/admin/blobs/{digest}": {
            "put": _op(
                "Upload one bundle file (streamed, size-limited, sha256-checked)",
                params=("digest",),
                ok="201",
                body=_BINARY,
                **admin,
            )
        },
        "/v1/admin/datasets": {
            "get": _op("Uploaded datasets", **admin),
            "post": _op(
                "Upload and validate a CSV dataset (raw body)",
                ok="201",
                body={"text/csv": {"schema": {"type": "string"}}},
                query=("kind", "name"),
                **admin,
            ),
        },
        "/v1/admin/jobs": {
            "post": _op(
                "Start a train-and-export job {interactions, catalog?, channel?}",
                ok="202",
                body=_JSON_OBJECT,
                **admin,
            )
        },
        "/v1/admin/jobs/{job_id}": {
            "get": _op("A job's status and log", params=("job_id",), **admin)
        },
        "/v1/admin/metadata/refresh": {"post": _op("Re-sign due TUF metadata", **admin)},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "facetwo registry",
            "version": __version__,
            "description": "Signed on-device recommender bundles and their TUF metadata. "
            "Public routes are the same for every client and carry no identifiers.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "an error",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["error"],
                                "properties": {
                                    "error": {
                                        "type": "object",
                                        "required": ["code", "message"],
                                        "properties": {
                                            "code": {"type": "string"},
                                            "message": {"type": "string"},
                                        },
                                    }
                                },
                            }
                        }
                    },
                }
            },
        },
    }
