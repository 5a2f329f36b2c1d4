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
    HttpStatusError,
    MetadataError,
    RollbackError,
    SignatureError,
    StoreBusyError,
    StoreError,
    StoreFullError,
    StoreUnreadableError,
)
from .features import Clock, InterestConfig, LocalContext
from .ledger import LedgerEntry, LedgerFetcher, NetworkLedger
from .ranking import Reason, Recommendation
from .recommender import Recommender
from .recommender_config import RecommenderConfig
from .shortcuts import DueEstimate, ReorderPayload, Shortcut, ShortcutConfig
from .store import PrivateStore, StoreConfig
from .store_keys import generate_store_key, keyring_store_key
from .updater import Updater, UpdaterConfig, UpdateResult

__version__ = "0.1.0"

__all__ = [
    "BundleError",
    "ClientError",
    "Clock",
    "DigestMismatchError",
    "DueEstimate",
    "ExpiredBundleError",
    "FetchError",
    "FormatError",
    "HttpStatusError",
    "InterestConfig",
    "LedgerEntry",
    "LedgerFetcher",
    "LocalContext",
    "MetadataError",
    "NetworkLedger",
    "PrivateStore",
    "Reason",
    "Recommendation",
    "Recommender",
    "RecommenderConfig",
    "ReorderPayload",
    "RollbackError",
    "Shortcut",
    "ShortcutConfig",
    "SignatureError",
    "StoreBusyError",
    "StoreConfig",
    "StoreError",
    "StoreFullError",
    "StoreUnreadableError",
    "UpdateResult",
    "Updater",
    "UpdaterConfig",
    "__version__",
    "generate_store_key",
    "keyring_store_key",
]
