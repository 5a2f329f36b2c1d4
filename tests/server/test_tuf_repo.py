"""The registry's TUF metadata and key management: what is signed, by whom, when, atomically."""

from __future__ import annotations

import copy
import json
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

from model_export.signing import load_private_key
from server.cli import main
from server.errors import ConflictError, KeyMaterialError, NotFoundError, ServerError
from server.keys import create_keys, online_keys_dir, rotate_keys
from server.manifests import resign_manifest
from server.registry import Registry
from server.tuf_repo import MetadataLifetimes, OnlineKeys
from tests.conftest import FIXED_NOW, write_tiny_bundle


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def registry(tmp_path: Path, keys_dir: Path) -> Registry:
    registry = Registry(tmp_path / "data", keys=OnlineKeys(online_keys_dir(keys_dir)))
    create_keys(keys_dir, registry, root_keys=3, root_threshold=2, now=FIXED_NOW)
    return registry


def _load(registry: Registry, role: str, version: int | None = None) -> Metadata[Root]:
    found = registry.current_metadata(role)
    assert found is not None
    digest = found[1] if version is None else registry.metadata_sha256(role, version)
    assert digest is not None
    with registry.blobs.open(digest) as handle:
        loaded: Metadata[Root] = Metadata.from_bytes(handle.read())
    return loaded


def _versions(registry: Registry) -> dict[str, int]:
    found = {
        role: registry.current_metadata(role)
        for role in ("root", "targets", "snapshot", "timestamp")
    }
    return {role: value[0] for role, value in found.items() if value is not None}


def _bundle_key(keys_dir: Path) -> Ed25519PrivateKey:
    return load_private_key(online_keys_dir(keys_dir) / "signing.key")


def test_create_keys_layout_and_root_v1(registry: Registry, keys_dir: Path) -> None:
    root = _load(registry, "root").signed
    assert root.version == 1
    assert root.consistent_snapshot
    assert root.roles["root"].threshold == 2
    assert len(root.roles["root"].keyids) == 3
    assert root.expires == FIXED_NOW + timedelta(days=365)
    assert (keys_dir / "root.json").read_bytes() == registry.blobs.path_for(
        registry.current_metadata("root")[1]  # type: ignore[index]
    ).read_bytes()
    assert len(list((keys_dir / "offline").glob("root-*.key"))) == 3
    online = sorted(p.name.split("-")[0] for p in online_keys_dir(keys_dir).glob("*.key"))
    assert online == ["signing.key", "snapshot", "targets", "timestamp"]
    for path in [*keys_dir.rglob("*.key")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Empty targets are signed right away, so devices can refresh before the first release.
    assert _versions(registry) == {"root": 1, "targets": 1, "snapshot": 1, "timestamp": 1}
    with pytest.raises(KeyMaterialError, match="refusing to overwrite"):
        create_keys(keys_dir, registry, now=FIXED_NOW)


def test_create_keys_checks_the_threshold(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="root_threshold"):
        create_keys(tmp_path / "k", Registry(tmp_path / "d"), root_keys=2, root_threshold=3)


def test_publish_signs_targets_snapshot_timestamp_that_verify(
    registry: Registry, keys_dir: Path, tmp_path: Path
) -> None:
    key = _bundle_key(keys_dir)
    stable = registry.publish_bundle(
        write_tiny_bundle(tmp_path / "s", key, model_version=4), now=FIXED_NOW
    )
    beta = registry.publish_bundle(
        write_tiny_bundle(tmp_path / "b", key, model_version=5), channel="beta", now=FIXED_NOW
    )
    assert _versions(registry) == {"root": 1, "targets": 3, "snapshot": 3, "timestamp": 3}
    root = _load(registry, "root").signed
    targets: Metadata[Targets] = _load(registry, "targets")  # type: ignore[assignment]
    snapshot: Metadata[Snapshot] = _load(registry, "snapshot")  # type: ignore[assignment]
    timestamp: Metadata[Timestamp] = _load(registry, "timestamp")  # type: ignore[assignment]
    for role, metadata in (("targets", targets), ("snapshot", snapshot), ("timestamp", timestamp)):
        root.verify_delegate(role, metadata.signed_bytes, metadata.signatures)
    listed = targets.signed.targets
    assert sorted(listed) == sorted(
        f"{ch}/{name}"
        for ch in ("beta", "stable")
        for name in ("manifest.json", "manifest.sig", "model.onnx", "catalog.json")
    )
    assert listed["stable/manifest.json"].hashes == {"sha256": stable.manifest_sha256}
    assert listed["stable/manifest.json"].custom == {"model_version": 4}
    assert listed["beta/model.onnx"].hashes == {"sha256": beta.files["model.onnx"][0]}
    assert listed["beta/model.onnx"].length == beta.files["model.onnx"][1]
    assert snapshot.signed.meta["targets.json"].version == 3
    assert timestamp.signed.snapshot_meta.version == 3
    assert timestamp.signed.expires == FIXED_NOW + timedelta(days=1)
    assert targets.signed.expires == FIXED_NOW + timedelta(days=90)


def test_refresh_resigns_only_what_is_due(registry: Registry) -> None:
    assert registry.refresh_metadata(now=FIXED_NOW) == []
    assert registry.refresh_metadata(now=FIXED_NOW + timedelta(hours=13)) == ["timestamp"]
    assert _versions(registry) == {"root": 1, "targets": 1, "snapshot": 1, "timestamp": 2}
    # The snapshot (7 days) is due after 3.5 days: all online roles are re-signed.
    resigned = registry.refresh_metadata(now=FIXED_NOW + timedelta(days=4))
    assert resigned == ["targets", "snapshot", "timestamp"]
    assert _versions(registry) == {"root": 1, "targets": 2, "snapshot": 2, "timestamp": 3}


def test_refresh_without_a_root_does_nothing(tmp_path: Path) -> None:
    assert Registry(tmp_path / "plain").refresh_metadata(now=FIXED_NOW) == []


def test_lifetimes_are_validated() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        MetadataLifetimes(timestamp=timedelta(0))


def test_publish_without_online_keys_is_refused_atomically(
    registry: Registry, keys_dir: Path, tmp_path: Path
) -> None:
    unkeyed = Registry(registry.data_dir)  # a root exists, but no keys are configured
    bundle = write_tiny_bundle(tmp_path / "b", _bundle_key(keys_dir))
    with pytest.raises(KeyMaterialError, match="keys directory"):
        unkeyed.publish_bundle(bundle, now=FIXED_NOW)
    for path in online_keys_dir(keys_dir).glob("targets-*.key"):
        path.unlink()  # the targets key is lost
    with pytest.raises(KeyMaterialError, match="role 'targets' needs 1 signature"):
        registry.publish_bundle(bundle, now=FIXED_NOW)
    assert registry.latest("stable") is None
    assert _versions(registry) == {"root": 1, "targets": 1, "snapshot": 1, "timestamp": 1}


def test_bundles_not_signed_by_the_service_key_are_refused(
    registry: Registry, tmp_path: Path
) -> None:
    foreign = write_tiny_bundle(tmp_path / "b", Ed25519PrivateKey.generate())
    with pytest.raises(ServerError, match="refused by the service's bundle key"):
        registry.publish_bundle(foreign, now=FIXED_NOW)
    assert registry.latest("stable") is None


def test_rollback_reissues_old_content_under_the_next_version(
    registry: Registry, keys_dir: Path, tmp_path: Path
) -> None:
    key = _bundle_key(keys_dir)
    v1 = registry.publish_bundle(
        write_tiny_bundle(tmp_path / "1", key, model_version=1), now=FIXED_NOW
    )
    registry.publish_bundle(
        write_tiny_bundle(tmp_path / "2", key, model_version=2, now=FIXED_NOW + timedelta(hours=1)),
        now=FIXED_NOW,
    )
    later = FIXED_NOW + timedelta(days=1)
    v3 = registry.rollback("stable", 1, now=later)
    assert v3.model_version == 3
    assert dict(v3.files) == dict(v1.files)
    assert v3.manifest_sha256 != v1.manifest_sha256
    manifest = json.loads(registry.blobs.path_for(v3.manifest_sha256).read_bytes())
    assert manifest["model_version"] == 3
    assert manifest["created_at"] == "2026-01-16T12:00:00Z"
    assert manifest["expires_at"] == "2026-04-16T12:00:00Z"  # the original 90 days
    targets = _load(registry, "targets").signed
    assert targets.targets["stable/manifest.json"].custom == {"model_version": 3}  # type: ignore[attr-defined]
    with pytest.raises(ConflictError, match="already is the latest"):
        registry.rollback("stable", 3)
    with pytest.raises(NotFoundError, match="no release v9"):
        registry.rollback("stable", 9)


def test_promote_reuses_bytes_when_newer_and_reissues_otherwise(
    registry: Registry, keys_dir: Path, tmp_path: Path
) -> None:
    key = _bundle_key(keys_dir)
    beta = registry.publish_bundle(
        write_tiny_bundle(tmp_path / "b", key, model_version=5), channel="beta", now=FIXED_NOW
    )
    promoted = registry.promote("beta", "stable", now=FIXED_NOW)
    assert (promoted.channel, promoted.model_version) == ("stable", 5)
    assert promoted.manifest_sha256 == beta.manifest_sha256
    again = registry.promote("beta", "stable", model_version=5, now=FIXED_NOW)
    assert again.model_version == 6
    with pytest.raises(NotFoundError):
        registry.promote("canary", "stable")


def test_resign_manifest_refuses_bad_input() -> None:
    with pytest.raises(ServerError, match="model_version"):
        resign_manifest(b"{}", model_version=0, signing_keys=[Ed25519PrivateKey.generate()])
    with pytest.raises(ServerError, match="bundle signing key"):
        resign_manifest(b"{}", model_version=1, signing_keys=[])
    with pytest.raises(ServerError, match="created_at"):
        resign_manifest(b"{}", model_version=1, signing_keys=[Ed25519PrivateKey.generate()])


def test_rotation_installs_root_signed_by_old_and_new_keys(
    registry: Registry, keys_dir: Path
) -> None:
    old_root = _load(registry, "root")
    rotation = rotate_keys(keys_dir, registry, "root", root_keys=2, root_threshold=2, now=FIXED_NOW)
    assert rotation.root_version == 2
    assert len(rotation.retired) == 3
    new_root = _load(registry, "root")
    old_root.signed.verify_delegate("root", new_root.signed_bytes, new_root.signatures)
    new_root.signed.verify_delegate("root", new_root.signed_bytes, new_root.signatures)
    assert set(new_root.signed.roles["root"].keyids) == set(rotation.new_key_ids)
    # Online metadata was re-signed under the new root in the same step.
    assert _versions(registry) == {"root": 2, "targets": 2, "snapshot": 2, "timestamp": 2}
    timestamp = rotate_keys(keys_dir, registry, "timestamp", now=FIXED_NOW)
    root3 = _load(registry, "root").signed
    assert root3.roles["timestamp"].keyids == list(timestamp.new_key_ids)
    assert [p.name.split("-")[0] for p in timestamp.retired] == ["timestamp"]


def test_install_root_refusals(registry: Registry, keys_dir: Path) -> None:
    current = _load(registry, "root")
    signers = list(OnlineKeys(keys_dir / "offline").signers().values())

    def candidate(version: int, sign_with: list[CryptoSigner], *, expired: bool = False) -> bytes:
        root = copy.deepcopy(current)
        root.signed.version = version
        if expired:
            root.signed.expires = FIXED_NOW - timedelta(days=1)
        root.signatures.clear()
        for signer in sign_with:
            root.sign(signer, append=True)
        return root.to_bytes()

    with pytest.raises(ConflictError, match="expected 2"):
        registry.install_root(candidate(3, signers), now=FIXED_NOW)
    with pytest.raises(ServerError, match="root"):
        registry.install_root(candidate(2, signers[:1]), now=FIXED_NOW)
    with pytest.raises(ServerError, match="expired"):
        registry.install_root(candidate(2, signers, expired=True), now=FIXED_NOW)
    with pytest.raises(ServerError, match="not valid TUF metadata"):
        registry.install_root(b"{}", now=FIXED_NOW)
    assert _versions(registry)["root"] == 1


def test_rotate_refuses_unknown_roles_and_uninitialised_registries(
    registry: Registry, keys_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="role"):
        rotate_keys(keys_dir, registry, "bundle")
    with pytest.raises(ServerError, match="no TUF root"):
        rotate_keys(keys_dir, Registry(tmp_path / "empty"), "targets")


def test_keys_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--keys-dir", str(tmp_path / "k"), "--data-dir", str(tmp_path / "d")]
    assert main(["keys", "create", *args, "--root-keys", "2", "--root-threshold", "2"]) == 0
    assert "root v1" in capsys.readouterr().out
    assert main(["keys", "rotate", *args, "--role", "targets"]) == 0
    out = capsys.readouterr().out
    assert "root v2" in out and "retired" in out
    assert main(["keys", "create", *args]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
