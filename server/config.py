"""Configuration of the registry service (the publish -> public download step).

One frozen dataclass, validated on construction: a bad value raises ``ValueError`` (a wrong type
``TypeError``) naming the field. ``ServerConfig.from_env`` builds one from ``FACETWO_*``
variables for ``facetwo serve``; tests construct it directly. There is no module-level mutable
config, and no secret ever has a default here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServerConfig"]

# A sanity bound, not a policy: request bodies this large belong in a streaming upload path.
_MAX_REQUEST_BYTES_LIMIT = 1 << 40
_DEFAULT_MAX_REQUEST_BYTES = 1_000_000

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
    """

    data_dir: Path
    max_request_bytes: int = _DEFAULT_MAX_REQUEST_BYTES
    log_client_addresses: bool = False

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

    @classmethod
    def from_env(
        cls, prefix: str = "FACETWO_", environ: Mapping[str, str] | None = None
    ) -> ServerConfig:
        """Build a config from environment variables.

        Reads ``{prefix}DATA_DIR`` (required), ``{prefix}MAX_REQUEST_BYTES`` and
        ``{prefix}LOG_CLIENT_ADDRESSES`` (``1/true/yes/on`` or ``0/false/no/off``), both
        optional.

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
        max_bytes_name = f"{prefix}MAX_REQUEST_BYTES"
        raw_max = env.get(max_bytes_name)
        max_request_bytes = _DEFAULT_MAX_REQUEST_BYTES
        if raw_max is not None:
            try:
                max_request_bytes = int(raw_max.strip().replace("_", ""))
            except ValueError:
                raise ValueError(f"{max_bytes_name}: not an integer: {raw_max!r}") from None
        log_name = f"{prefix}LOG_CLIENT_ADDRESSES"
        raw_log = env.get(log_name, "").strip().lower()
        if raw_log not in _TRUE_WORDS | _FALSE_WORDS:
            raise ValueError(f"{log_name}: expected true or false, got {raw_log!r}")
        return cls(
            data_dir=Path(raw_dir).expanduser(),
            max_request_bytes=max_request_bytes,
            log_client_addresses=raw_log in _TRUE_WORDS,
        )
