"""facetwo client SDK: verifies signed model bundles and recommends on the device.

Private signals recorded here never leave the device: the only network traffic the SDK makes is
the `Updater` fetching public bundle files, with no identifiers.
"""

from __future__ import annotations

from .errors import (
    BundleError,
    ClientError,
    DigestMismatchError,
    ExpiredBundleError,
    FetchError,
    FormatError,
    RollbackError,
    SignatureError,
    StoreError,
    StoreUnreadableError,
)
from .recommender import Reason, Recommendation, Recommender, RecommenderConfig
from .updater import Updater, UpdaterConfig, UpdateResult

__version__ = "0.1.0"

__all__ = [
    "BundleError",
    "ClientError",
    "DigestMismatchError",
    "ExpiredBundleError",
    "FetchError",
    "FormatError",
    "Reason",
    "Recommendation",
    "Recommender",
    "RecommenderConfig",
    "RollbackError",
    "SignatureError",
    "StoreError",
    "StoreUnreadableError",
    "UpdateResult",
    "Updater",
    "UpdaterConfig",
    "__version__",
]
