"""Per-route request body limits and upload authentication, enforced inside waitress.

waitress reads a whole request body (spooling it to a temporary file) before the WSGI app runs,
so limits checked in Flask come too late: an anonymous client could make the server store a
body as large as the biggest upload allowed. :class:`BodyGate` decides from the request line
and headers alone, before a byte of body is read:

- an upload endpoint (``UPLOAD_ENDPOINTS``) carrying a valid admin bearer token may send up
  to ``max_upload_bytes``;
- every other request, including an upload without a valid token, up to ``max_request_bytes``.

A larger ``Content-Length`` is answered at once (401 for an upload without a valid token, 413
otherwise) and the connection is closed unread; a chunked body is cut off as soon as its
decoded size passes its limit, or its bytes on the wire (chunk sizes, extensions, trailer:
framing waitress holds in memory until a line ends) pass twice the limit plus 4 KiB. The limit
is decided once, from the head; each chunk costs two comparisons. The answers use the API's
JSON error shape. Flask checks the same limits again, so the app stays safe under any other
WSGI server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from waitress.parser import HTTPRequestParser
from waitress.utilities import Error
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from server.admin import UPLOAD_ENDPOINTS, UPLOAD_LIMIT_EXTENSION
from server.auth import HASHES_EXTENSION, token_matches

__all__ = ["BodyGate", "gated_parser_class"]

_DEFAULT_MAX_REQUEST_BYTES = 1_000_000
_FRAMING_SLACK = 4_096
"""Bytes of chunk framing allowed beyond one per body byte: the last chunk and a trailer."""


def wire_limit(limit: int) -> int:
    """The most bytes a chunked body of at most ``limit`` decoded bytes may take on the wire."""
    return 2 * limit + _FRAMING_SLACK


@dataclass(frozen=True)
class _Refusal:
    status: int
    reason: str
    code: str
    message: str


class _JsonError(Error):  # type: ignore[misc]
    """A waitress error answered with the API's ``{"error": {"code", "message"}}`` body."""

    def __init__(self, refusal: _Refusal) -> None:
        super().__init__(refusal.message)
        self.code = refusal.status
        self.reason = refusal.reason
        self._refusal = refusal

    def to_response(self, ident: str | None = None) -> tuple[str, list[tuple[str, str]], bytes]:
        body = json.dumps({"error": {"code": self._refusal.code, "message": self.body}})
        headers = [("Content-Type", "application/json")]
        if self._refusal.status == 401:
            headers.append(("WWW-Authenticate", 'Bearer realm="facetwo-admin"'))
        return f"{self.code} {self.reason}", headers, body.encode("utf-8")


class BodyGate:
    """The body limit of one request, from its method, path and ``Authorization`` header."""

    def __init__(
        self,
        *,
        max_request_bytes: int,
        max_upload_bytes: int,
        token_hashes: frozenset[str],
        is_upload: Callable[[str, str], bool],
    ) -> None:
        """Make a gate.

        Args:
            max_request_bytes: Limit of every body that is not an authenticated upload.
            max_upload_bytes: Limit of an authenticated upload.
            token_hashes: SHA-256 hex digests of the admin tokens.
            is_upload: ``(method, path) -> bool``: whether the request routes to an upload.
        """
        self.max_request_bytes = max_request_bytes
        self.max_upload_bytes = max_upload_bytes
        self._hashes = token_hashes
        self._is_upload = is_upload

    @classmethod
    def for_app(cls, app: Flask) -> BodyGate:
        """The gate of a registry app: its limits, its tokens and its upload routes."""
        adapter = app.url_map.bind("localhost")

        def is_upload(method: str, path: str) -> bool:
            try:
                endpoint, _ = adapter.match(path, method=method)
            except (HTTPException, RequestRedirect):
                return False
            return endpoint in UPLOAD_ENDPOINTS

        return cls(
            max_request_bytes=int(
                app.config.get("MAX_CONTENT_LENGTH") or _DEFAULT_MAX_REQUEST_BYTES
            ),
            max_upload_bytes=int(app.extensions.get(UPLOAD_LIMIT_EXTENSION) or 0),
            token_hashes=frozenset(app.extensions.get(HASHES_EXTENSION, frozenset())),
            is_upload=is_upload,
        )

    @property
    def largest(self) -> int:
        """The most bytes any request body may take on the wire, chunk framing included
        (waitress's own backstop, which counts a chunked body's framing: the gate refuses
        every body before it)."""
        return wire_limit(max(self.max_request_bytes, self.max_upload_bytes))

    def limit(self, method: str, path: str, authorization: str) -> tuple[int, bool]:
        """The body limit of a request, and whether it routes to an upload without a valid token.

        Args:
            method: The HTTP method.
            path: The decoded request path.
            authorization: The ``Authorization`` header ('' when absent).
        """
        if not self._is_upload(method, path):
            return self.max_request_bytes, False
        scheme, _, presented = authorization.partition(" ")
        authorised = (
            scheme.lower() == "bearer"
            and bool(presented.strip())
            and bool(self._hashes)
            and token_matches(presented.strip(), self._hashes)
        )
        if authorised:
            return max(self.max_upload_bytes, self.max_request_bytes), False
        return self.max_request_bytes, True

    def refusal(self, method: str, path: str, authorization: str, size: int) -> _Refusal | None:
        """Why a body of ``size`` bytes is refused, or None when it is allowed."""
        limit, anonymous_upload = self.limit(method, path, authorization)
        return None if size <= limit else _refusal(method, path, limit, anonymous_upload)


def _refusal(method: str, path: str, limit: int, anonymous_upload: bool) -> _Refusal:
    """The answer to a body over ``limit``: 401 for an upload without a valid token, else 413."""
    if anonymous_upload:
        return _Refusal(
            401,
            "Unauthorized",
            "unauthorized",
            "a valid admin bearer token is required before an upload body is read",
        )
    return _Refusal(
        413,
        "Request Entity Too Large",
        "request_entity_too_large",
        f"request bodies are limited to {limit} bytes on {method} {path}",
    )


def gated_parser_class(gate: BodyGate) -> type[Any]:
    """A waitress request parser that applies ``gate`` before reading any body."""

    class _GatedParser(HTTPRequestParser):  # type: ignore[misc]
        _refused: _JsonError | None = None
        _limit = 0
        _wire_limit = 0
        _anonymous_upload = False

        def parse_header(self, header_plus: bytes) -> None:
            super().parse_header(header_plus)
            if self.content_length > 0 or self.chunked:  # route and token: once per request
                authorization = str(self.headers.get("AUTHORIZATION", ""))
                limit, self._anonymous_upload = gate.limit(self.command, self.path, authorization)
                self._limit, self._wire_limit = limit, wire_limit(limit)
                if self.content_length > limit:
                    self._refuse()

        def received(self, data: bytes) -> int:
            consumed = int(super().received(data))
            body = self.body_rcv
            if (
                self.chunked
                and self._refused is None
                and body is not None
                # waitress's ChunkedReceiver: its length is the decoded body so far, while
                # body_bytes_received counts every byte consumed, framing included
                and (len(body) > self._limit or self.body_bytes_received > self._wire_limit)
            ):
                self._refuse()
            if self._refused is not None:  # also over waitress's own plain-text refusal
                self.error = self._refused
                self.completed = True
            return consumed

        def _refuse(self) -> None:
            refusal = _refusal(self.command, self.path, self._limit, self._anonymous_upload)
            self._refused = _JsonError(refusal)
            self.error = self._refused
            self.completed = True
            self.expect_continue = False  # never invite a body that will be refused

    return _GatedParser
