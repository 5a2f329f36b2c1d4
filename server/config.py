"""Configuration of the registry service (the publish -> public download step).

One frozen dataclass, validated on construction: a bad value raises ``ValueError`` (a wrong type
``TypeError``) naming the field. ``ServerConfig.from_env`` builds one from ``FACETWO_*``
variables for ``facetwo serve``; tests construct it directly. There is no module-level mutable
config, and no secret ever has a default here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from server.auth import load_token_hashes
from server.tuf_repo import MetadataLifetimes

__all__ = ["ServerConfig"]

# A sanity bound, not a policy: request bodies this large belong in a streaming upload path.
_MAX_REQUEST_BYTES_LIMIT = 1 << 40
_DEFAULT_MAX_REQUEST_BYTES = 1_000_000
_DEFAULT_MAX_UPLOAD_BYTES = 1 << 30
_PASSPHRASE_ENV = "SIGNING_KEY_PASSPHRASE"  # noqa: S105 - a variable name

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings of the registry service.

    Attributes:
        data_dir: Directory holding the registry database and the blob store; created on first
            use.
        max_request_bytes: Largest request body accepted (Flask ``MAX_CONTENT_LENGTH`` and the
            WSGI server's body limit).
        log_client_addresses: Whether access logs may contain client IP addresses. Off by
            default: the service has no reason to know who downloads a public bundle.
        keys_dir: Directory of the online signing keys (TUF targets/snapshot/timestamp and the
            bundle key ``signing.key``); None: the service cannot sign.
        admin_token_sha256: SHA-256 hashes of the admin bearer tokens (never the tokens);
            empty: the admin API refuses everyone.
        max_upload_bytes: Largest admin upload (a bundle file or a dataset); the WSGI server's
            body limit is the larger of this and ``max_request_bytes``.
        lifetimes: Expiry periods of the TUF metadata.
        job_workers: Training jobs that may run at once.
        keys_passphrase: Passphrase of encrypted key files (from the environment; not shown in
            the repr).
    """

    data_dir: Path
    max_request_bytes: int = _DEFAULT_MAX_REQUEST_BYTES
    log_client_addresses: bool = False
    keys_dir: Path | None = None
    admin_token_sha256: frozenset[str] = frozenset()
    max_upload_bytes: int = _DEFAULT_MAX_UPLOAD_BYTES
    lifetimes: MetadataLifetimes = field(default_factory=MetadataLifetimes)
    job_workers: int = 1
    keys_passphrase: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Validate every field.

        Raises:
            TypeError: A field has the wrong type.
            ValueError: A field has a bad value; the message names the field.
        """
        if not isinstance(self.data_dir, Path):
            raise TypeError(
                f"data_dir: expected a pathlib.Path, got {type(self.data_dir).__name__}"
            )
        if str(self.data_dir) == "" or "\x00" in str(self.data_dir):
            raise ValueError(f"data_dir: not a usable path: {str(self.data_dir)!r}")
        if isinstance(self.max_request_bytes, bool) or not isinstance(self.max_request_bytes, int):
            raise TypeError(
                f"max_request_bytes: expected an int, got {type(self.max_request_bytes).__name__}"
            )
        if not 1 <= self.max_request_bytes <= _MAX_REQUEST_BYTES_LIMIT:
            raise ValueError(
                f"max_request_bytes: must be between 1 and {_MAX_REQUEST_BYTES_LIMIT}, "
                f"got {self.max_request_bytes}"
            )
        if not isinstance(self.log_client_addresses, bool):
            raise TypeError(
                "log_client_addresses: expected a bool, "
                f"got {type(self.log_client_addresses).__name__}"
            )
        if self.keys_dir is not None and not isinstance(self.keys_dir, Path):
            raise TypeError(
                f"keys_dir: expected a pathlib.Path, got {type(self.keys_dir).__name__}"
            )
        if not isinstance(self.admin_token_sha256, frozenset) or not all(
            isinstance(h, str) and len(h) == 64 for h in self.admin_token_sha256
        ):
            raise ValueError("admin_token_sha256: expected a frozenset of sha256 hex digests")
        if isinstance(self.max_upload_bytes, bool) or not isinstance(self.max_upload_bytes, int):
            raise TypeError(
                f"max_upload_bytes: expected an int, got {type(self.max_upload_bytes).__name__}"
            )
        if not 1 <= self.max_upload_bytes <= _MAX_REQUEST_BYTES_LIMIT:
            raise ValueError(
                f"max_upload_bytes: must be between 1 and {_MAX_REQUEST_BYTES_LIMIT}, "
                f"got {self.max_upload_bytes}"
            )
        if not isinstance(self.lifetimes, MetadataLifetimes):
            raise TypeError(
                f"lifetimes: expected MetadataLifetimes, got {type(self.lifetimes).__name__}"
            )
        if isinstance(self.job_workers, bool) or not isinstance(self.job_workers, int):
            raise TypeError(f"job_workers: expected an int, got {type(self.job_workers).__name__}")
        if not 1 <= self.job_workers <= 64:
            raise ValueError(f"job_workers: must be between 1 and 64, got {self.job_workers}")

    @classmethod
    def from_env(
        cls, prefix: str = "FACETWO_", environ: Mapping[str, str] | None = None
    ) -> ServerConfig:
        """Build a config from environment variables.

        Reads ``{prefix}DATA_DIR`` (required), ``{prefix}MAX_REQUEST_BYTES``,
        ``{prefix}MAX_UPLOAD_BYTES``, ``{prefix}LOG_CLIENT_ADDRESSES`` (``1/true/yes/on`` or
        ``0/false/no/off``), ``{prefix}KEYS_DIR``, ``{prefix}SIGNING_KEY_PASSPHRASE`` and the
        admin tokens (``FACETWO_ADMIN_TOKEN`` / ``FACETWO_ADMIN_TOKEN_FILE``, see
        :mod:`server.auth`), all optional.

        Args:
            prefix: Prefix of every variable name.
            environ: The variables to read; ``os.environ`` when None.

        Returns:
            The validated config.

        Raises:
            ValueError: A required variable is missing or a value does not parse; the message
                names the variable.
        """
        env = os.environ if environ is None else environ
        data_dir_name = f"{prefix}DATA_DIR"
        raw_dir = env.get(data_dir_name, "").strip()
        if not raw_dir:
            raise ValueError(f"{data_dir_name} must be set to the service's data directory")
        max_request_bytes = _int_env(env, f"{prefix}MAX_REQUEST_BYTES", _DEFAULT_MAX_REQUEST_BYTES)
        max_upload_bytes = _int_env(env, f"{prefix}MAX_UPLOAD_BYTES", _DEFAULT_MAX_UPLOAD_BYTES)
        raw_keys = env.get(f"{prefix}KEYS_DIR", "").strip()
        passphrase = env.get(f"{prefix}{_PASSPHRASE_ENV}", "")
        log_name = f"{prefix}LOG_CLIENT_ADDRESSES"
        raw_log = env.get(log_name, "").strip().lower()
        if raw_log not in _TRUE_WORDS | _FALSE_WORDS:
            raise ValueError(f"{log_name}: expected true or false, got {raw_log!r}")
        return cls(
            data_dir=Path(raw_dir).expanduser(),
            max_request_bytes=max_request_bytes,
            log_client_addresses=raw_log in _TRUE_WORDS,
            keys_dir=Path(raw_keys).expanduser() if raw_keys else None,
            admin_token_sha256=load_token_hashes(env),
            max_upload_bytes=max_upload_bytes,
            keys_passphrase=passphrase.encode("utf-8") if passphrase else None,
        )


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return int(raw.strip().replace("_", ""))
    except ValueError:
        raise ValueError(f"{name}: not an integer: {raw!r}") from None
