"""The updater without TUF (the signed manifest alone): install atomically, keep the last good
bundle after any failure, send nothing that identifies the device. The TUF flow and its attack
table are in test_tuf_attacks.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import (
    BundleError,
    DigestMismatchError,
    ExpiredBundleError,
    FetchError,
    Recommender,
    RollbackError,
    SignatureError,
    Updater,
    UpdaterConfig,
)
from client_sdk.errors import HttpStatusError
from client_sdk.updater import HttpFetcher
from model_export.signing import sign_manifest
from tests.conftest import FIXED_NOW, write_tiny_bundle

BASE = "https://models.example"


class FakeFetcher:
    """Serves a bundle's files at the service's URLs from a dict; records every request."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, int]] = []

    def publish(self, bundle: Path, channel: str = "stable") -> None:
        manifest = json.loads((bundle / "manifest.json").read_bytes())
        for name, entry in manifest["files"].items():
            self.files[f"{BASE}/v1/blobs/{entry['sha256']}"] = (bundle / name).read_bytes()
        for name in ("manifest.json", "manifest.sig"):
            self.files[f"{BASE}/v1/channels/{channel}/{name}"] = (bundle / name).read_bytes()

    def fetch(self, url: str, *, max_bytes: int) -> bytes:
        self.requests.append((url, max_bytes))
        if url not in self.files:
            raise HttpStatusError(f"{url}: HTTP 404", 404)
        data = self.files[url]
        if len(data) > max_bytes:
            raise FetchError(f"{url}: body over the cap of {max_bytes} bytes")
        return data


@pytest.fixture
def fetcher(tmp_path: Path, signing_key: Ed25519PrivateKey) -> FakeFetcher:
    fake = FakeFetcher()
    fake.publish(write_tiny_bundle(tmp_path / "v1", signing_key, model_version=1))
    return fake


def _updater(tmp_path: Path, key: Ed25519PrivateKey, fetcher: FakeFetcher) -> Updater:
    return Updater(BASE, tmp_path / "device", trusted_keys=[key.public_key()], fetcher=fetcher)


def test_first_update_installs_and_second_is_a_no_op(
    tmp_path: Path, signing_key: Ed25519PrivateKey, fetcher: FakeFetcher
) -> None:
    updater = _updater(tmp_path, signing_key, fetcher)
    assert updater.current_bundle_dir() is None
    first = updater.update(now=FIXED_NOW)
    assert (first.installed_version, first.changed) == (1, True)
    with Recommender.open(
        first.bundle_dir, trusted_keys=[signing_key.public_key()], now=FIXED_NOW
    ) as rec:
        assert rec.model_version == 1
    blob_requests = len(fetcher.requests)
    second = updater.update(now=FIXED_NOW)
    assert (second.installed_version, second.changed) == (1, False)
    assert len(fetcher.requests) == blob_requests + 2  # only the manifest and its signature


def test_newer_version_replaces_and_old_bundles_are_pruned(
    tmp_path: Path, signing_key: Ed25519PrivateKey, fetcher: FakeFetcher
) -> None:
    updater = _updater(tmp_path, signing_key, fetcher)
    updater.update(now=FIXED_NOW)
    for version in (2, 3):
        fetcher.publish(
            write_tiny_bundle(tmp_path / f"v{version}", signing_key, model_version=version)
        )
        assert updater.update(now=FIXED_NOW).installed_version == version
    installed = sorted(p.name.split("-")[0] for p in (tmp_path / "device").iterdir() if p.is_dir())
    assert installed == ["v2", "v3"]  # the current one and the last good one before it


def _tamper_blob(fetcher: FakeFetcher, _tmp: Path, _key: Ed25519PrivateKey) -> None:
    for url, data in fetcher.files.items():
        if "/blobs/" in url and len(data) > 200:
            fetcher.files[url] = data[:100] + bytes([data[100] ^ 1]) + data[101:]


def _other_signer(fetcher: FakeFetcher, _tmp: Path, _key: Ed25519PrivateKey) -> None:
    url = f"{BASE}/v1/channels/stable/manifest.sig"
    manifest = fetcher.files[f"{BASE}/v1/channels/stable/manifest.json"]
    fetcher.files[url] = sign_manifest(manifest, [Ed25519PrivateKey.generate()])


def _rollback(fetcher: FakeFetcher, tmp: Path, key: Ed25519PrivateKey) -> None:
    from datetime import timedelta

    # A genuinely signed, older release (not byte-identical to the installed one).
    old = write_tiny_bundle(tmp / "old", key, model_version=1, now=FIXED_NOW - timedelta(days=1))
    fetcher.publish(old)


def _truncated_blob(fetcher: FakeFetcher, _tmp: Path, _key: Ed25519PrivateKey) -> None:
    for url, data in fetcher.files.items():
        if "/blobs/" in url:
            fetcher.files[url] = data[: len(data) // 2]


def _endless_blob(fetcher: FakeFetcher, _tmp: Path, _key: Ed25519PrivateKey) -> None:
    for url, data in fetcher.files.items():
        if "/blobs/" in url:
            fetcher.files[url] = data + b"\0" * 10_000_000


def _missing_blob(fetcher: FakeFetcher, _tmp: Path, _key: Ed25519PrivateKey) -> None:
    for url in [u for u in fetcher.files if "/blobs/" in u]:
        del fetcher.files[url]


def _expired(fetcher: FakeFetcher, tmp: Path, key: Ed25519PrivateKey) -> None:
    from datetime import timedelta

    fetcher.publish(
        write_tiny_bundle(tmp / "stale", key, model_version=3, now=FIXED_NOW - timedelta(days=200))
    )


UPDATE_ATTACKS = [
    ("tampered blob", _tamper_blob, DigestMismatchError),
    ("untrusted signer", _other_signer, SignatureError),
    ("rollback to an older version", _rollback, RollbackError),
    ("truncated download", _truncated_blob, DigestMismatchError),
    ("endless download", _endless_blob, FetchError),
    ("missing blob", _missing_blob, FetchError),
    ("expired metadata", _expired, ExpiredBundleError),
]


@pytest.mark.parametrize(
    ("name", "attack", "error"), UPDATE_ATTACKS, ids=[a[0] for a in UPDATE_ATTACKS]
)
def test_failed_update_keeps_the_last_good_bundle_serving(
    tmp_path: Path,
    signing_key: Ed25519PrivateKey,
    fetcher: FakeFetcher,
    name: str,
    attack: object,
    error: type[Exception],
) -> None:
    updater = _updater(tmp_path, signing_key, fetcher)
    good = updater.update(now=FIXED_NOW).bundle_dir
    fetcher.publish(write_tiny_bundle(tmp_path / "v2", signing_key, model_version=2))
    attack(fetcher, tmp_path, signing_key)  # type: ignore[operator]
    with pytest.raises(error):
        updater.update(now=FIXED_NOW)
    assert updater.current_bundle_dir() == good
    assert updater.installed_version(now=FIXED_NOW) == 1
    with Recommender.open(good, trusted_keys=[signing_key.public_key()], now=FIXED_NOW) as rec:
        rec.record("purchase", "a0")
        assert rec.recommend(k=1)[0].item_id == "a1"
    leftovers = [p.name for p in (tmp_path / "device").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_requests_carry_no_identifiers_and_are_the_same_for_every_device(
    tmp_path: Path, signing_key: Ed25519PrivateKey, fetcher: FakeFetcher
) -> None:
    seen: list[list[tuple[str, int]]] = []
    for device, history in (("alice", ["a0", "a1"]), ("bob", ["b2"])):
        fetcher.requests.clear()
        updater = Updater(
            BASE, tmp_path / device, trusted_keys=[signing_key.public_key()], fetcher=fetcher
        )
        bundle = updater.update(now=FIXED_NOW).bundle_dir
        with Recommender.open(
            bundle, trusted_keys=[signing_key.public_key()], now=FIXED_NOW
        ) as rec:
            for item in history:
                rec.record("purchase", item)
            rec.recommend(k=3)
        seen.append(list(fetcher.requests))
    assert seen[0] == seen[1]
    for url, _cap in seen[0]:
        assert url.startswith((f"{BASE}/v1/blobs/", f"{BASE}/v1/channels/stable/"))
        assert "?" not in url and "alice" not in url and "bob" not in url


def test_http_fetcher_refuses_non_http_urls() -> None:
    with pytest.raises(FetchError, match="only http"):
        HttpFetcher().fetch("file:///etc/passwd", max_bytes=10)


def test_updater_config_is_validated() -> None:
    with pytest.raises(ValueError, match="keep_bundles"):
        UpdaterConfig(keep_bundles=0)
    with pytest.raises(ValueError, match="timeout_seconds"):
        UpdaterConfig(timeout_seconds=0)
    with pytest.raises(ValueError, match="deadline_seconds"):
        UpdaterConfig(deadline_seconds=0)


def test_trusted_root_must_be_bytes_or_a_readable_path(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="trusted_root"):
        Updater(BASE, tmp_path, trusted_keys=[], trusted_root=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot read"):
        Updater(BASE, tmp_path, trusted_keys=[], trusted_root=tmp_path / "missing.json")
    big = tmp_path / "root.json"
    big.write_bytes(b" " * 600_000)
    with pytest.raises(ValueError, match="over the cap"):
        Updater(BASE, tmp_path, trusted_keys=[], trusted_root=big)


def test_installed_bundle_that_no_longer_verifies_counts_as_none(
    tmp_path: Path, signing_key: Ed25519PrivateKey, fetcher: FakeFetcher
) -> None:
    updater = _updater(tmp_path, signing_key, fetcher)
    bundle = updater.update(now=FIXED_NOW).bundle_dir
    (bundle / "model.onnx").write_bytes(b"corrupted on disk")
    assert updater.installed_version(now=FIXED_NOW) is None
    with pytest.raises(BundleError):
        Recommender.open(bundle, trusted_keys=[signing_key.public_key()], now=FIXED_NOW)
