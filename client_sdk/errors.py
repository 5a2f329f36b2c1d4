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


class FetchError(ClientError):
    """A download failed, timed out or exceeded its size cap."""


class StoreError(ClientError):
    """The private store could not be read or written."""


class StoreUnreadableError(StoreError):
    """Wrong key or tampered store: one error, no detail."""
