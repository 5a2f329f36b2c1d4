"""A repository simulator in the manner of python-tuf's tests: a real registry (SQLite, blobs,
signed TUF metadata) served through the Flask test client, with hooks that let a test play the
attacker between the service and the device."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp

from client_sdk import Recommender, Updater, UpdaterConfig
from client_sdk.errors import FetchError, HttpStatusError
from model_export.signing import load_private_key
from server.app import create_app
from server.config import ServerConfig
from server.keys import create_keys, online_keys_dir
from server.registry import Registry, Release
from server.tuf_repo import OnlineKeys
from tests.conftest import FIXED_NOW, write_tiny_bundle

BASE = "https://models.example"
Tamper = Callable[[str, bytes], bytes]


class SimFetcher:
    """Serves the registry through the test client; `overrides` and `tamper` play the attacker."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.overrides: dict[str, bytes] = {}
        self.tamper: Tamper | None = None
        self.requests: list[str] = []
        self.on_fetch: Callable[[], None] | None = None

    def fetch(self, url: str, *, max_bytes: int) -> bytes:
        path = url.removeprefix(BASE)
        self.requests.append(path)
        if self.on_fetch is not None:
            self.on_fetch()
        if path in self.overrides:
            status, data = 200, self.overrides[path]
        else:
            response = self.client.get(path)
            try:
                status, data = response.status_code, response.get_data()
            finally:
                response.close()
        if status != 200:
            raise HttpStatusError(f"{url}: HTTP {status}", status)
        if self.tamper is not None:
            data = self.tamper(path, data)
        if len(data) > max_bytes:
            raise FetchError(f"{url}: body over the cap of {max_bytes} bytes")
        return data


@dataclass
class Sim:
    """A registry with a 2-of-3 root, its online keys, and a device following `stable`."""

    root: Path
    registry: Registry
    client: FlaskClient
    fetcher: SimFetcher
    bundle_key: Ed25519PrivateKey
    device_dir: Path
    monotonic: Callable[[], float] = field(default=lambda: 0.0)

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    def publish(self, version: int, *, key: Ed25519PrivateKey | None = None) -> Release:
        bundle = write_tiny_bundle(
            self.root / f"b{version}", key or self.bundle_key, model_version=version
        )
        return self.registry.publish_bundle(bundle, now=FIXED_NOW)

    def updater(self, config: UpdaterConfig | None = None) -> Updater:
        return Updater(
            BASE,
            self.device_dir,
            trusted_keys=[self.bundle_key.public_key()],
            trusted_root=self.keys_dir / "root.json",
            fetcher=self.fetcher,
            config=config,
            monotonic=self.monotonic,
        )

    def served(self, path: str) -> bytes:
        response = self.client.get(path)
        try:
            assert response.status_code == 200, path
            return response.get_data()
        finally:
            response.close()

    def metadata(self, role: str, version: int | None = None) -> Metadata[Root]:
        """A stored metadata version (the newest by default), parsed."""
        found = self.registry.current_metadata(role)
        assert found is not None
        digest = found[1] if version is None else self.registry.metadata_sha256(role, version)
        assert digest is not None
        with self.registry.blobs.open(digest) as handle:
            parsed: Metadata[Root] = Metadata.from_bytes(handle.read())
        return parsed

    def signers(self) -> dict[str, CryptoSigner]:
        return OnlineKeys(online_keys_dir(self.keys_dir)).signers()

    def role_signer(self, role: str) -> CryptoSigner:
        root: Root = self.metadata("root").signed
        signers = self.signers()
        return next(signers[k] for k in root.roles[role].keyids if k in signers)

    def forge(self, edit: Callable[[dict[str, TargetFile]], None]) -> None:
        """Serve new targets/snapshot/timestamp signed with the real online keys (a compromise
        of the online keys only), with `edit` applied to the targets."""
        targets: Metadata[Targets] = Metadata.from_bytes(self.metadata("targets").to_bytes())
        edit(targets.signed.targets)
        targets.signed.version += 1
        targets.sign(self.role_signer("targets"))
        targets_bytes = targets.to_bytes()
        snapshot: Metadata[Snapshot] = Metadata.from_bytes(self.metadata("snapshot").to_bytes())
        snapshot.signed.version += 1
        snapshot.signed.meta["targets.json"] = MetaFile.from_data(
            targets.signed.version, targets_bytes, ["sha256"]
        )
        snapshot.sign(self.role_signer("snapshot"))
        snapshot_bytes = snapshot.to_bytes()
        self.serve_timestamp(
            lambda t: setattr(
                t,
                "snapshot_meta",
                MetaFile.from_data(snapshot.signed.version, snapshot_bytes, ["sha256"]),
            )
        )
        self.fetcher.overrides[f"/v1/metadata/{targets.signed.version}.targets.json"] = (
            targets_bytes
        )
        self.fetcher.overrides[f"/v1/metadata/{snapshot.signed.version}.snapshot.json"] = (
            snapshot_bytes
        )

    def serve_timestamp(
        self,
        edit: Callable[[Timestamp], None],
        *,
        signers: list[CryptoSigner] | None = None,
    ) -> bytes:
        """Serve a new timestamp version with `edit` applied, signed by `signers`."""
        timestamp: Metadata[Timestamp] = Metadata.from_bytes(self.metadata("timestamp").to_bytes())
        timestamp.signed.version += 1
        edit(timestamp.signed)
        timestamp.signatures.clear()
        for signer in [self.role_signer("timestamp")] if signers is None else signers:
            timestamp.sign(signer, append=True)
        data = timestamp.to_bytes()
        self.fetcher.overrides["/v1/metadata/timestamp.json"] = data
        return data


def make_sim(tmp: Path) -> Sim:
    registry = Registry(tmp / "data", keys=OnlineKeys(online_keys_dir(tmp / "keys")))
    create_keys(tmp / "keys", registry, root_keys=3, root_threshold=2, now=FIXED_NOW)
    app = create_app(ServerConfig(data_dir=tmp / "data", keys_dir=online_keys_dir(tmp / "keys")))
    bundle_key = load_private_key(online_keys_dir(tmp / "keys") / "signing.key")
    sim = Sim(
        tmp, registry, app.test_client(), SimFetcher(app.test_client()), bundle_key, tmp / "device"
    )
    return sim


def assert_last_good_serves(
    sim: Sim, updater: Updater, good: Path, *, now: datetime = FIXED_NOW
) -> None:
    """The device still points at the good bundle, it verifies, and it recommends."""
    assert updater.current_bundle_dir() == good
    assert updater.installed_version(now=now) == 1
    with Recommender.open(good, trusted_keys=[sim.bundle_key.public_key()], now=now) as rec:
        rec.record("purchase", "a0")
        assert rec.recommend(k=1)[0].item_id == "a1"
    assert [p.name for p in sim.device_dir.iterdir() if p.name.startswith(".")] == []
