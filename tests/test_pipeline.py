"""End to end, as the demo does it: sample shop -> keys -> build -> publish over the admin API ->
serve (real waitress on loopback) -> the device updates through TUF over HTTP -> records ->
recommends with reasons. And the service's disk being tampered with after publishing."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from client_sdk import DigestMismatchError, Recommender, Updater
from client_sdk.bundle import REORDER_PRIORS_FILE
from client_sdk.priors import parse_priors
from server.app import create_app
from server.auth import hash_token
from server.cli import main
from server.config import ServerConfig
from server.demo import run_demo
from server.registry import Registry
from server.sample_store import generate_sample_store
from server.wsgi import ServiceHandle, start_service

TOKEN = "pipeline-admin-token-" + "x" * 20


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pipeline")
    shop = generate_sample_store(root / "shop", n_items=300, n_shoppers=600, seed=11)
    keys = ["--keys-dir", str(root / "keys"), "--data-dir", str(root / "registry")]
    assert main(["keys", "create", *keys]) == 0
    for version in (7, 8):
        status = main(
            [
                "build",
                "--interactions", str(shop.interactions),
                "--catalog", str(shop.catalog),
                "--signing-key", str(root / "keys" / "online" / "signing.key"),
                "--out", str(root / f"v{version}"),
                "--model-version", str(version),
                # v8 as for devices whose SDK reads only version 1 of the reorder priors
                "--reorder-priors-version", "2" if version == 7 else "1",
            ]
        )  # fmt: skip
        assert status == 0
    return {
        "root": root,
        "registry": root / "registry",
        "v7": root / "v7",
        "v8": root / "v8",
        "pub": root / "keys" / "online" / "signing.pub",
        "trust": root / "keys" / "root.json",
        "online": root / "keys" / "online",
    }


def _serve(built: dict[str, Path], data_dir: Path) -> ServiceHandle:
    shutil.copytree(built["registry"], data_dir)  # a fresh registry with root v1, no release
    config = ServerConfig(
        data_dir=data_dir,
        keys_dir=built["online"],
        admin_token_sha256=frozenset({hash_token(TOKEN)}),
    )
    return start_service(create_app(config), threads=4)


def _publish(
    bundle: Path, url: str, monkeypatch: pytest.MonkeyPatch, channel: str = "stable"
) -> None:
    monkeypatch.setenv("FACETWO_ADMIN_TOKEN", TOKEN)
    assert main(["publish", "--bundle", str(bundle), "--server", url, "--channel", channel]) == 0


def test_publish_then_device_updates_through_tuf_and_recommends(
    built: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with _serve(built, tmp_path / "registry") as service:
        _publish(built["v7"], service.url, monkeypatch)
        assert "published v7 on stable" in capsys.readouterr().out
        updater = Updater(
            service.url,
            tmp_path / "device",
            trusted_keys=[built["pub"]],
            trusted_root=built["trust"],
        )
        result = updater.update()
        assert (result.installed_version, result.changed) == (7, True)
        assert not updater.update().changed
        # Publishing again with the same version is refused by the service, with its reason.
        monkeypatch.setenv("FACETWO_ADMIN_TOKEN", TOKEN)
        assert main(["publish", "--bundle", str(built["v7"]), "--server", service.url]) == 1
        assert "HTTP 409: conflict" in capsys.readouterr().err
        # A newer version is picked up on the next update; a kiosk without TUF still works.
        _publish(built["v8"], service.url, monkeypatch)
        assert updater.update().installed_version == 8
        kiosk = Updater(service.url, tmp_path / "kiosk", trusted_keys=[built["pub"]])
        assert kiosk.update().installed_version == 8
        result = updater.update()
    with Recommender.open(result.bundle_dir, trusted_keys=[built["pub"]]) as rec:
        bought = next(e for e in rec.catalog.entries if not e.consumable)
        rec.record("purchase", bought.item_id)
        recommendations = rec.recommend(k=10)
    assert len(recommendations) == 10
    assert bought.item_id not in {r.item_id for r in recommendations}
    history_reasons = [r for r in recommendations if r.reasons[0].kind == "history"]
    assert history_reasons, "a purchase must explain at least one suggestion"
    assert all(r.reasons[0].item_id == bought.item_id for r in history_reasons)


def test_tampered_blob_on_the_server_is_refused_and_last_good_stays(
    built: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _serve(built, tmp_path / "registry") as service:
        _publish(built["v7"], service.url, monkeypatch)
        updater = Updater(
            service.url,
            tmp_path / "device",
            trusted_keys=[built["pub"]],
            trusted_root=built["trust"],
        )
        good = updater.update().bundle_dir
        _publish(built["v8"], service.url, monkeypatch)
        newer = Registry(tmp_path / "registry").latest("stable")
        assert newer is not None and newer.model_version == 8
        blob = Registry(tmp_path / "registry").blobs.path_for(newer.files["model.onnx"][0])
        data = bytearray(blob.read_bytes())
        data[50] ^= 0xFF
        blob.write_bytes(bytes(data))
        with pytest.raises(DigestMismatchError):
            updater.update()
    assert updater.current_bundle_dir() == good
    assert updater.installed_version() == 7


def test_demo_runs_and_tells_its_story(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_demo(workdir=tmp_path, out=out) == 0
    text = out.getvalue()
    assert "published v1 on stable" in text
    assert "GET /v1/metadata/timestamp.json" in text
    assert "installed model v1" in text
    assert "because you bought" in text
    assert "refused: DigestMismatchError" in text
    assert "refused: SignatureError" in text


def test_build_writes_the_reorder_priors_version_asked_for(built: dict[str, Path]) -> None:
    """v7 is built with the default (columns, version 2), v8 with `--reorder-priors-version 1`;
    both carry the same tuned priors, and the SDK reads either."""
    versions = {}
    for name in ("v7", "v8"):
        data = (built[name] / REORDER_PRIORS_FILE).read_bytes()
        versions[name] = json.loads(data)["version"]
        priors = parse_priors(data)
        assert priors.items and priors.min_buyers >= 1
    assert versions == {"v7": 2, "v8": 1}
    first, second = (parse_priors((built[n] / REORDER_PRIORS_FILE).read_bytes()) for n in versions)
    assert first.params == second.params and dict(first.items) == dict(second.items)


def test_an_unknown_reorder_priors_version_is_refused() -> None:
    from server.reorder_tuning import TuningConfig

    with pytest.raises(ValueError, match="file_version must be 1 or 2, found 3"):
        TuningConfig(file_version=3)
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        main(["build", "--interactions", "i.csv", "--signing-key", "k", "--out", "o",
              "--reorder-priors-version", "3"])  # fmt: skip
