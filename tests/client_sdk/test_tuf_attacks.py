"""Updates through TUF: an attack table in the manner of python-tuf's repository simulator.

Every row: the device has installed v1; the service publishes v2; the attacker between them
does one thing; the update must fail with that attack's specific error, and v1 must still be
installed, verify and recommend.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root, TargetFile, Timestamp

from client_sdk import (
    DigestMismatchError,
    ExpiredBundleError,
    FetchError,
    Recommender,
    RollbackError,
    SignatureError,
    UpdaterConfig,
)
from client_sdk.bundle import MANIFEST_FILE, MODEL_FILE, SIGNATURE_FILE
from model_export.signing import load_private_key
from server.keys import rotate_keys
from server.tuf_repo import OnlineKeys
from tests.client_sdk.tuf_sim import Sim, assert_last_good_serves, make_sim
from tests.conftest import FIXED_NOW, write_tiny_bundle


@pytest.fixture
def sim(tmp_path: Path) -> Sim:
    return make_sim(tmp_path)


def _flip_model(path: str, data: bytes) -> bytes:
    if path.endswith(f".{MODEL_FILE}"):
        return data[:100] + bytes([data[100] ^ 1]) + data[101:]
    return data


def _truncate_model(path: str, data: bytes) -> bytes:
    return data[: len(data) // 2] if path.endswith(f".{MODEL_FILE}") else data


def _endless_model(path: str, data: bytes) -> bytes:
    return data + b"\0" * 10_000_000 if path.endswith(f".{MODEL_FILE}") else data


def _tampered(sim: Sim) -> None:
    sim.fetcher.tamper = _flip_model


def _truncated(sim: Sim) -> None:
    sim.fetcher.tamper = _truncate_model


def _endless_target(sim: Sim) -> None:
    sim.fetcher.tamper = _endless_model


def _endless_metadata(sim: Sim) -> None:
    sim.fetcher.overrides["/v1/metadata/timestamp.json"] = b"{" + b" " * 10_000_000


def _foreign_key(sim: Sim) -> None:
    sim.serve_timestamp(lambda _t: None, signers=[CryptoSigner(Ed25519PrivateKey.generate())])


def _stripped(sim: Sim) -> None:
    sim.serve_timestamp(lambda _t: None, signers=[])


def _rollback(sim: Sim) -> None:
    # The service's very first timestamp (from `keys create`): older than what the device saw.
    sim.fetcher.overrides["/v1/metadata/timestamp.json"] = sim.metadata("timestamp", 1).to_bytes()


def _freeze(sim: Sim) -> None:
    """Nothing to serve: the attacker just holds back fresh metadata (see `now` below)."""


def _old_snapshot(sim: Sim) -> None:
    version = sim.metadata("snapshot").signed.version
    old = sim.served(f"/v1/metadata/{version - 1}.snapshot.json")
    sim.fetcher.overrides[f"/v1/metadata/{version}.snapshot.json"] = old


def _old_targets(sim: Sim) -> None:
    version = sim.metadata("targets").signed.version
    old = sim.served(f"/v1/metadata/{version - 1}.targets.json")
    sim.fetcher.overrides[f"/v1/metadata/{version}.targets.json"] = old


def _serve_target(sim: Sim, targets: dict[str, TargetFile], name: str, data: bytes) -> None:
    info = TargetFile.from_data(f"stable/{name}", data, ["sha256"])
    targets[info.path] = info
    sim.fetcher.overrides[f"/v1/targets/stable/{info.hashes['sha256']}.{name}"] = data


def _replay_older_bundle(sim: Sim) -> None:
    # With the online keys stolen, list a genuinely signed but older v1 (not the installed one).
    old = write_tiny_bundle(sim.root / "old", sim.bundle_key, now=FIXED_NOW - timedelta(days=1))

    def edit(targets: dict[str, TargetFile]) -> None:
        for name in (MANIFEST_FILE, SIGNATURE_FILE):
            _serve_target(sim, targets, name, (old / name).read_bytes())

    sim.forge(edit)


def _swap_model(sim: Sim) -> None:
    sim.forge(lambda targets: _serve_target(sim, targets, MODEL_FILE, b"\x08\x01evil model"))


def _foreign_bundle(sim: Sim) -> None:
    evil = write_tiny_bundle(sim.root / "evil", Ed25519PrivateKey.generate(), model_version=5)

    def edit(targets: dict[str, TargetFile]) -> None:
        for path in evil.iterdir():
            _serve_target(sim, targets, path.name, path.read_bytes())

    sim.forge(edit)


def _root_below_threshold(sim: Sim) -> None:
    root: Metadata[Root] = copy.deepcopy(sim.metadata("root"))
    attacker = CryptoSigner(Ed25519PrivateKey.generate())
    for keyid in list(root.signed.roles["timestamp"].keyids):
        root.signed.revoke_key(keyid, "timestamp")
    root.signed.add_key(attacker.public_key, "timestamp")
    root.signed.version += 1
    root.signatures.clear()
    one_root_key = next(iter(OnlineKeys(sim.keys_dir / "offline").signers().values()))
    root.sign(one_root_key)  # 1 of the 2 needed
    sim.fetcher.overrides[f"/v1/metadata/{root.signed.version}.root.json"] = root.to_bytes()
    sim.serve_timestamp(lambda _t: None, signers=[attacker])


def _revoked_key(sim: Sim) -> None:
    rotation = rotate_keys(sim.keys_dir, sim.registry, "timestamp", now=FIXED_NOW)
    (retired,) = rotation.retired
    old = load_private_key(retired)
    sim.serve_timestamp(lambda _t: None, signers=[CryptoSigner(old)])


def _expired_timestamp_signed(sim: Sim) -> None:
    def expire(timestamp: Timestamp) -> None:
        timestamp.expires = FIXED_NOW - timedelta(hours=1)

    sim.serve_timestamp(expire)


@dataclass(frozen=True)
class Attack:
    name: str
    attack: Callable[[Sim], None]
    error: type[Exception]
    match: str
    later: timedelta = timedelta(0)
    recovers: bool = True  # False: validly signed (stolen keys), so the device keeps its versions


ATTACKS = [
    Attack("tampered target file", _tampered, DigestMismatchError, "update metadata"),
    Attack("truncated download", _truncated, DigestMismatchError, "update metadata"),
    Attack("endless target download", _endless_target, FetchError, "over"),
    Attack("endless metadata download", _endless_metadata, FetchError, "over"),
    Attack("timestamp signed by a foreign key", _foreign_key, SignatureError, "timestamp"),
    Attack("stripped signatures", _stripped, SignatureError, "timestamp"),
    Attack("rollback to an old timestamp", _rollback, RollbackError, "timestamp version 1"),
    Attack("freeze: no fresh metadata", _freeze, ExpiredBundleError, "expired", timedelta(days=2)),
    Attack(
        "fresh signature, expired date", _expired_timestamp_signed, ExpiredBundleError, "expired"
    ),
    Attack("mix-and-match: old snapshot", _old_snapshot, DigestMismatchError, "update metadata"),
    Attack("mix-and-match: old targets", _old_targets, DigestMismatchError, "update metadata"),
    Attack(
        "stolen online keys replay v1",
        _replay_older_bundle,
        RollbackError,
        "not newer",
        recovers=False,
    ),
    Attack(
        "stolen online keys swap the model",
        _swap_model,
        DigestMismatchError,
        "disagree",
        recovers=False,
    ),
    Attack(
        "stolen online keys, foreign bundle",
        _foreign_bundle,
        SignatureError,
        "trusted key",
        recovers=False,
    ),
    Attack("root rotation below threshold", _root_below_threshold, SignatureError, "root"),
    Attack("key revoked by a rotation", _revoked_key, SignatureError, "timestamp"),
]


@pytest.mark.parametrize("row", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_is_refused_and_last_good_model_serves(sim: Sim, row: Attack) -> None:
    sim.publish(1)
    updater = sim.updater()
    good = updater.update(now=FIXED_NOW).bundle_dir
    sim.publish(2)
    row.attack(sim)
    with pytest.raises(row.error, match=row.match):
        updater.update(now=FIXED_NOW + row.later)
    assert_last_good_serves(sim, updater, good)
    # Once the attacker is gone, the genuine v2 installs.
    sim.fetcher.overrides.clear()
    sim.fetcher.tamper = None
    if row.recovers and not row.later:
        assert updater.update(now=FIXED_NOW).installed_version == 2


def test_total_deadline_stops_a_slow_update(sim: Sim) -> None:
    clock = [0.0]

    def slow() -> None:
        clock[0] += 100.0  # every request takes 100 s

    sim.monotonic = lambda: clock[0]
    sim.fetcher.on_fetch = slow
    sim.publish(1)
    updater = sim.updater(UpdaterConfig(deadline_seconds=250.0))
    with pytest.raises(FetchError, match="deadline"):
        updater.update(now=FIXED_NOW)
    assert updater.current_bundle_dir() is None


def test_first_update_installs_and_the_next_is_two_small_requests(sim: Sim) -> None:
    sim.publish(1)
    updater = sim.updater()
    result = updater.update(now=FIXED_NOW)
    assert (result.installed_version, result.changed) == (1, True)
    sim.fetcher.requests.clear()
    again = updater.update(now=FIXED_NOW)
    assert (again.installed_version, again.changed, again.bundle_dir) == (
        1,
        False,
        result.bundle_dir,
    )
    assert sim.fetcher.requests == ["/v1/metadata/2.root.json", "/v1/metadata/timestamp.json"]


def test_two_devices_send_identical_requests(sim: Sim, tmp_path: Path) -> None:
    sim.publish(1)
    seen = []
    for device in ("alice", "bob"):
        sim.fetcher.requests.clear()
        sim.device_dir = tmp_path / device
        bundle = sim.updater().update(now=FIXED_NOW).bundle_dir
        with Recommender.open(
            bundle, trusted_keys=[sim.bundle_key.public_key()], now=FIXED_NOW
        ) as rec:
            rec.record("purchase", "a0" if device == "alice" else "b1")
            rec.recommend(k=3)
        seen.append(list(sim.fetcher.requests))
    assert seen[0] == seen[1]
    assert all(p.startswith(("/v1/metadata/", "/v1/targets/stable/")) for p in seen[0])
    assert not any("?" in p or "alice" in p or "bob" in p for p in seen[0])


def test_device_follows_root_and_online_key_rotations(sim: Sim, tmp_path: Path) -> None:
    sim.publish(1)
    updater = sim.updater()
    updater.update(now=FIXED_NOW)
    # A new 2-of-3 set of root keys, then new keys for every online role.
    rotate_keys(sim.keys_dir, sim.registry, "root", root_keys=3, root_threshold=2, now=FIXED_NOW)
    for role in ("targets", "snapshot", "timestamp"):
        rotate_keys(sim.keys_dir, sim.registry, role, now=FIXED_NOW)
    sim.publish(2)
    assert updater.update(now=FIXED_NOW).installed_version == 2
    assert sorted(p.name for p in (sim.device_dir / "tuf" / "root_history").iterdir()) == [
        f"{v}.root.json" for v in range(1, 6)
    ]
    # A new device that ships only root v1 walks the same chain.
    sim.device_dir = tmp_path / "fresh"
    assert sim.updater().update(now=FIXED_NOW).installed_version == 2


def test_root_rotation_without_a_threshold_of_old_keys_is_refused(sim: Sim) -> None:
    offline = sim.keys_dir / "offline"
    for path in sorted(offline.iterdir())[1:]:  # keep 1 of the 3 root keys; 2 are needed
        path.unlink()
    from server.errors import KeyMaterialError

    with pytest.raises(KeyMaterialError, match="needs 2"):
        rotate_keys(sim.keys_dir, sim.registry, "timestamp", now=FIXED_NOW)
    assert sim.metadata("root").signed.version == 1


def test_rollback_and_promotion_reach_the_device(sim: Sim) -> None:
    v1_model = sim.publish(1).files[MODEL_FILE][0]
    updater = sim.updater()
    updater.update(now=FIXED_NOW)
    sim.publish(2)
    assert updater.update(now=FIXED_NOW).installed_version == 2
    release = sim.registry.rollback("stable", 1, now=FIXED_NOW)
    assert release.model_version == 3
    rolled = updater.update(now=FIXED_NOW)
    assert rolled.installed_version == 3
    assert (rolled.bundle_dir / MODEL_FILE).read_bytes() == (
        sim.registry.blobs.path_for(v1_model).read_bytes()
    )


def test_channel_without_a_release(sim: Sim) -> None:
    sim.publish(1)
    updater = sim.updater()
    updater._channel = "beta"  # the same device, following another channel
    with pytest.raises(FetchError, match="'beta' has no release"):
        updater.update(now=FIXED_NOW)


def test_corrupt_trusted_root_is_refused(sim: Sim) -> None:
    from client_sdk import Updater
    from client_sdk.errors import MetadataError

    with pytest.raises(MetadataError):
        Updater("https://x", sim.device_dir, trusted_keys=[sim.bundle_key.public_key()],
                trusted_root=b"{}", fetcher=sim.fetcher).update(now=FIXED_NOW)  # fmt: skip
