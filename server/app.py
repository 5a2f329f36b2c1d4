"""Application factory of the registry service (publish and the public download step).

``create_app(config)`` wires a Flask app to a :class:`~server.registry.Registry` opened on
``config.data_dir`` (with the online signing keys of ``config.keys_dir``): the public routes
(:mod:`server.routes`), the admin API (:mod:`server.admin`, bearer tokens), ``/openapi.json``
and a job runner for training. All state lives on disk, so any number of worker processes built
from the same config serve the same answers.

Guarantees for every response:

- Errors, whether raised as :class:`~server.errors.ApiError`, by Flask (404, 405, 413) or
  unhandled (500), are rendered by one handler as ``{"error": {"code", "message"}}`` and never
  expose internals.
- No cookies and no sessions: no secret key is set and any ``Set-Cookie`` is stripped.
- Request bodies larger than ``config.max_request_bytes`` (``config.max_upload_bytes`` for the
  two upload routes) are refused with 413 from their ``Content-Length``, before a route runs or
  a byte of the body is read; streamed bodies are cut off at the same limit.
- Client addresses are logged only when ``config.log_client_addresses`` is true.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime, timezone

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from server import routes
from server.admin import (
    CLOCK_EXTENSION,
    JOBS_EXTENSION,
    UPLOAD_ENDPOINTS,
    UPLOAD_LIMIT_EXTENSION,
    admin,
)
from server.auth import HASHES_EXTENSION
from server.config import ServerConfig
from server.errors import ApiError
from server.jobs import JobRunner
from server.openapi import openapi_document
from server.registry import Registry
from server.tuf_repo import OnlineKeys

__all__ = ["CONFIG_EXTENSION", "create_app"]

logger = logging.getLogger(__name__)

CONFIG_EXTENSION = "facetwo.config"
"""Key of the app's :class:`ServerConfig` in ``app.extensions``."""

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(
    config: ServerConfig | None = None, *, clock: Callable[[], datetime] | None = None
) -> Flask:
    """Build the registry service.

    Args:
        config: Service settings; read from ``FACETWO_*`` environment variables when None.
        clock: Returns the current time for admin actions (signing, expiry checks); the
            system clock when None. Tests pass a fixed one.

    Returns:
        A Flask app serving the public routes, the admin API and ``/openapi.json``.

    Raises:
        ValueError: ``config`` is None and the environment does not hold a valid config.
        ServerError: The registry database cannot be used (for example, a newer schema).
        OSError: The data directory cannot be created.
    """
    if config is None:
        config = ServerConfig.from_env()
    app = Flask(__name__, static_folder=None)  # no static route: only the API
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes
    app.extensions[CONFIG_EXTENSION] = config
    keys = (
        None
        if config.keys_dir is None
        else OnlineKeys(config.keys_dir, passphrase=config.keys_passphrase)
    )
    registry = Registry(config.data_dir, keys=keys, lifetimes=config.lifetimes)
    app.extensions[routes.REGISTRY_EXTENSION] = registry
    app.extensions[HASHES_EXTENSION] = config.admin_token_sha256
    app.extensions[UPLOAD_LIMIT_EXTENSION] = config.max_upload_bytes
    now = clock or (lambda: datetime.now(timezone.utc))
    app.extensions[CLOCK_EXTENSION] = now
    app.extensions[JOBS_EXTENSION] = JobRunner(registry, max_workers=config.job_workers, clock=now)
    app.register_blueprint(routes.public)
    app.register_blueprint(admin)
    document = openapi_document()
    app.add_url_rule("/openapi.json", "openapi", lambda: jsonify(document))
    # One handler for everything: unhandled exceptions reach it as InternalServerError.
    app.register_error_handler(HTTPException, _render_error)
    app.register_error_handler(ApiError, _render_error)

    @app.before_request
    def refuse_oversized_body() -> None:
        # Public routes never read a body, so Flask alone would not enforce the limit.
        limit = request.max_content_length
        if request.endpoint in UPLOAD_ENDPOINTS:
            limit = config.max_upload_bytes
            # werkzeug's stream refuses the read that finds the end of a body of exactly its
            # limit; the upload itself counts its bytes against max_upload_bytes.
            request.max_content_length = limit + 1
        if limit is not None and (request.content_length or 0) > limit:
            raise RequestEntityTooLarge(f"request bodies are limited to {limit} bytes")

    @app.after_request
    def finish_response(response: Response) -> Response:
        if "Set-Cookie" in response.headers:
            logger.warning("dropped a Set-Cookie header on %s", request.path)
            del response.headers["Set-Cookie"]
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        _log_access(response, with_address=config.log_client_addresses)
        return response

    logger.info("registry service ready (data dir %s)", config.data_dir)
    return app


def _render_error(error: Exception) -> Response:
    """Render any error as ``{"error": {"code": "...", "message": "..."}}``.

    Args:
        error: An :class:`ApiError` or a werkzeug ``HTTPException`` (unhandled exceptions arrive
            as ``InternalServerError``, already logged by Flask).

    Returns:
        A JSON response with the error's status and headers (such as ``Allow`` on 405).
    """
    headers: list[tuple[str, str]] = []
    if isinstance(error, ApiError):
        status, code, message = error.status_code, error.code, error.message
        headers = list(error.headers.items())
    elif isinstance(error, HTTPException):
        status = error.code or 500
        code = _snake_case(error.name)
        message = error.description or error.name
        headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    else:  # pragma: no cover - Flask routes every other exception through InternalServerError
        status, code, message = 500, "internal_server_error", "internal server error"
    response = jsonify(error={"code": code, "message": message})
    response.status_code = status
    for name, value in headers:
        response.headers[name] = value
    return response


def _snake_case(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _log_access(response: Response, *, with_address: bool) -> None:
    if with_address:
        logger.info(
            "%s %s %s %d",
            request.remote_addr,
            request.method,
            request.path,
            response.status_code,
        )
    else:
        logger.debug("%s %s %d", request.method, request.path, response.status_code)
