"""Errors raised by the server package: data loading, training, the service and the CLI."""

from __future__ import annotations


class ServerError(Exception):
    """Base class for every error raised by server."""


class DataError(ServerError):
    """An input file is malformed; the message names the file, line and field."""


class TrainingError(ServerError):
    """Training cannot proceed with the data given (for example: no interactions left)."""


class ApiError(ServerError):
    """An HTTP error rendered as {"error": {"code", "message"}}."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
