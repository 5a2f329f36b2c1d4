"""Admin authentication: bearer tokens from the environment or a file, kept only as hashes.

- Tokens come from ``FACETWO_ADMIN_TOKEN`` (comma-separated for several) or from the file named
  by ``FACETWO_ADMIN_TOKEN_FILE`` (one per line, ``#`` comments); never from a default.
- A token must have at least 32 characters. Only its SHA-256 is kept in memory and config;
  a presented token is hashed and compared with every stored hash by ``hmac.compare_digest``,
  so neither the comparison nor the loop leaks which prefix matched.
- :func:`require_admin` runs before every admin route (the admin blueprint installs it), and a
  test walks ``app.url_map`` to prove every non-public route answers 401 without a token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from flask import current_app, request

from server.errors import ApiError

__all__ = [
    "MIN_TOKEN_CHARS",
    "TOKEN_ENV",
    "TOKEN_FILE_ENV",
    "hash_token",
    "load_token_hashes",
    "require_admin",
    "token_matches",
]

logger = logging.getLogger(__name__)

TOKEN_ENV = "FACETWO_ADMIN_TOKEN"  # noqa: S105 - a variable name, not a secret
TOKEN_FILE_ENV = "FACETWO_ADMIN_TOKEN_FILE"  # noqa: S105 - a variable name, not a secret
MIN_TOKEN_CHARS = 32
HASHES_EXTENSION = "facetwo.admin-token-hashes"
"""Key of the app's ``frozenset`` of token hashes in ``app.extensions``."""


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token, the only form in which it is kept.

    Raises:
        ValueError: The token is shorter than ``MIN_TOKEN_CHARS`` or has surrounding spaces.
    """
    if token != token.strip():
        raise ValueError("admin token: must not start or end with whitespace")
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(
            f"admin token: must have at least {MIN_TOKEN_CHARS} characters, got {len(token)}"
        )
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_token_hashes(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Read admin tokens from ``FACETWO_ADMIN_TOKEN`` and ``FACETWO_ADMIN_TOKEN_FILE``.

    Args:
        environ: The variables; ``os.environ`` when None.

    Returns:
        The hashes of every token (empty: the admin API refuses everyone).

    Raises:
        ValueError: A token is too short, or the token file cannot be read (the message names
            the variable or the file and line, never the token).
    """
    env = os.environ if environ is None else environ
    hashes: set[str] = set()
    for token in (t.strip() for t in env.get(TOKEN_ENV, "").split(",")):
        if token:
            hashes.add(_hashed(token, TOKEN_ENV))
    file_name = env.get(TOKEN_FILE_ENV, "").strip()
    if file_name:
        path = Path(file_name).expanduser()
        try:
            lines = path.read_text("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{TOKEN_FILE_ENV}: cannot read {path}: {exc}") from exc
        for number, line in enumerate(lines, start=1):
            token = line.strip()
            if token and not token.startswith("#"):
                hashes.add(_hashed(token, f"{path}:{number}"))
    return frozenset(hashes)


def token_matches(presented: str, hashes: Iterable[str]) -> bool:
    """Whether ``presented`` hashes to one of ``hashes``, compared in constant time.

    Every stored hash is compared, whatever the outcome of earlier comparisons.
    """
    digest = hashlib.sha256(presented.encode("utf-8")).hexdigest().encode("ascii")
    matched = False
    for stored in hashes:
        matched |= hmac.compare_digest(digest, stored.encode("ascii"))
    return matched


def require_admin() -> None:
    """``before_request`` hook of the admin routes: demand a valid bearer token.

    Raises:
        ApiError: 401 ``unauthorized`` (with ``WWW-Authenticate: Bearer``) when the header is
            missing, malformed or carries an unknown token, or when no token is configured.
    """
    hashes = current_app.extensions.get(HASHES_EXTENSION, frozenset())
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip() or not hashes:
        raise _unauthorized()
    if not token_matches(presented.strip(), hashes):
        logger.warning("refused an admin request with an unknown token on %s", request.path)
        raise _unauthorized()


def _unauthorized() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "a valid admin bearer token is required",
        headers={"WWW-Authenticate": 'Bearer realm="facetwo-admin"'},
    )


def _hashed(token: str, where: str) -> str:
    try:
        return hash_token(token)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
