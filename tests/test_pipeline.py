"""End to end, as the demo does it: sample shop -> build -> publish -> serve (real waitress on
loopback) -> device fetches over HTTP and verifies -> records -> recommends with reasons."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from client_sdk import DigestMismatchError, Recommender, Updater
from server.app import create_app
from server.cli import main
from server.config import ServerConfig
from server.demo import run_demo
from server.registry import Registry
from server.sample_store import generate_sample_store
from server.wsgi import start_service


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pipeline")
    shop = generate_sample_store(root / "shop", n_items=300, n_shoppers=600, seed=11)
    assert main(["keygen", "--out", str(root / "keys")]) == 0
    status = main(
        [
            "build",
            "--interactions", str(shop.interactions),
            "--catalog", str(shop.catalog),
            "--signing-key", str(root / "keys" / "signing.key"),
            "--out", str(root / "bundle"),
            "--model-version", "7",
        ]
    )  # fmt: skip
    assert status == 0
    return {"root": root, "bundle": root / "bundle", "pub": root / "keys" / "signing.pub"}


def test_device_fetches_verifies_and_recommends_over_http(built: dict[str, Path]) -> None:
    root = built["root"]
    Registry(root / "registry").publish_bundle(built["bundle"], channel="stable")
    with start_service(create_app(ServerConfig(data_dir=root / "registry"))) as service:
        updater = Updater(service.url, root / "device", trusted_keys=[built["pub"]])
        result = updater.update()
        assert (result.installed_version, result.changed) == (7, True)
        assert not updater.update().changed
    with Recommender.open(result.bundle_dir, trusted_keys=[built["pub"]]) as rec:
        catalog = rec.catalog
        bought = next(e for e in catalog.entries if not e.consumable)
        rec.record("purchase", bought.item_id)
        recommendations = rec.recommend(k=10)
    assert len(recommendations) == 10
    assert bought.item_id not in {r.item_id for r in recommendations}
    assert all(r.reasons and r.reasons[0].text for r in recommendations)
    history_reasons = [r for r in recommendations if r.reasons[0].kind == "history"]
    assert history_reasons, "a purchase must explain at least one suggestion"
    assert all(r.reasons[0].item_id == bought.item_id for r in history_reasons)


def test_tampered_blob_on_the_server_is_refused_and_last_good_stays(
    built: dict[str, Path], tmp_path: Path
) -> None:
    registry = Registry(tmp_path / "registry")
    release = registry.publish_bundle(built["bundle"], channel="stable")
    with start_service(create_app(ServerConfig(data_dir=tmp_path / "registry"))) as service:
        updater = Updater(service.url, tmp_path / "device", trusted_keys=[built["pub"]])
        good = updater.update().bundle_dir
        # A v8 is published, then its model blob is corrupted on the server's disk.
        v8 = tmp_path / "v8"
        manifest = json.loads((built["bundle"] / "manifest.json").read_bytes())
        assert manifest["model_version"] == 7
        status = main(
            [
                "build",
                "--interactions", str(built["root"] / "shop" / "interactions.csv"),
                "--signing-key", str(built["root"] / "keys" / "signing.key"),
                "--out", str(v8),
                "--model-version", "8",
            ]
        )  # fmt: skip
        assert status == 0
        newer = registry.publish_bundle(v8, channel="stable")
        model_sha = newer.files["model.onnx"][0]
        blob = registry.blobs.path_for(model_sha)
        blob.chmod(0o644)
        data = bytearray(blob.read_bytes())
        data[50] ^= 0xFF
        blob.write_bytes(bytes(data))
        with pytest.raises(DigestMismatchError):
            updater.update()
    assert release.model_version == 7
    assert updater.current_bundle_dir() == good
    assert updater.installed_version() == 7


def test_demo_runs_and_tells_its_story(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_demo(workdir=tmp_path, out=out) == 0
    text = out.getvalue()
    assert "installed model v1" in text
    assert "because you bought" in text
    assert "refused: DigestMismatchError" in text
    assert "refused: SignatureError" in text
