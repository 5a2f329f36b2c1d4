"""Errors raised by the server package: data loading, training, the service and the CLI."""

from __future__ import annotations


class ServerError(Exception):
    """Base class for every error raised by server."""


class DataError(ServerError):
    """An input file is malformed; the message names the file, line and field."""


class TrainingError(ServerError):
    """Training cannot proceed with the data given (for example: no interactions left)."""


class NotFoundError(ServerError):
    """A named thing (channel, release, dataset, job, metadata version) does not exist."""


class ConflictError(ServerError):
    """The request contradicts the stored state (for example: a version that is not newer)."""


class PayloadTooLargeError(ServerError):
    """An upload is larger than its limit; nothing was stored."""


class KeyMaterialError(ServerError):
    """Signing keys are missing, unreadable, or not the ones the trusted root names."""


class ApiError(ServerError):
    """An HTTP error rendered as {"error": {"code", "message"}}."""

    def __init__(
        self, status_code: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
