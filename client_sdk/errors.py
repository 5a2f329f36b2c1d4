"""Errors raised by client_sdk: one base class, families under it.

Messages name what was expected and what was found. Messages about private data stay opaque:
they never contain events, histories, keys or identifiers of the shopper.
"""

from __future__ import annotations


class ClientError(Exception):
    """Base class for every error raised by client_sdk."""


class BundleError(ClientError):
    """This bundle must not be used."""


class SignatureError(BundleError):
    """The manifest's signature is missing, malformed or made by no trusted key."""


class DigestMismatchError(BundleError):
    """A bundle file's bytes do not match the sha256 or size the signed manifest lists."""


class RollbackError(BundleError):
    """The bundle's model version is not newer than the one installed."""


class ExpiredBundleError(BundleError):
    """The bundle's signed expiry time has passed."""


class FormatError(BundleError):
    """The bundle is signed but its format version or contents are not understood."""


class MetadataError(BundleError):
    """The update metadata (TUF) is inconsistent or refers to something it must not."""


class FetchError(ClientError):
    """A download failed, timed out or exceeded its size cap."""


class HttpStatusError(FetchError):
    """The server answered with an HTTP error status (kept in `status_code`)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class StoreError(ClientError):
    """The private store could not be read or written."""


class StoreUnreadableError(StoreError):
    """Wrong key or tampered store: one error, no detail."""


class StoreFullError(StoreError):
    """The device's disk (or the store's size limit) is full: the write was not made."""


class StoreBusyError(StoreError):
    """Another process or Recommender holds this store open."""
