"""The examples run as a user would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import Recommender
from client_sdk.kiosk import KioskRules
from model_export.signing import public_pem
from tests.client_sdk.kiosk_shop import write_kiosk_shop_bundle
from tests.client_sdk.shop import (
    BATTERIES,
    CAMERA,
    CAMERA_BAG,
    KETTLE,
    TEAPOT_BLUE,
    FixedClock,
)
from tests.conftest import write_tiny_bundle

ROOT = Path(__file__).resolve().parent.parent


def test_recommend_from_bundle(signing_key: Ed25519PrivateKey, tmp_path: Path) -> None:
    pub = tmp_path / "signing.pub"
    pub.write_bytes(public_pem(signing_key.public_key()))
    # Written now, not at the fixed test clock: the script checks expiry against the real time.
    bundle = write_tiny_bundle(tmp_path / "bundle", signing_key, now=datetime.now(timezone.utc))
    script = ROOT / "examples" / "recommend_from_bundle.py"
    args = [str(bundle), str(pub), "--purchase", "a0", "--purchase", "a1", "-k", "2"]
    out = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, check=True
    )
    lines = out.stdout.splitlines()
    assert lines[0].startswith(" 1. Item A2  (because you bought Item A")
    assert len(lines) == 2
    other = tmp_path / "other.pub"
    other.write_bytes(public_pem(Ed25519PrivateKey.generate().public_key()))
    refused = subprocess.run(
        [sys.executable, str(script), str(bundle), str(other)], capture_output=True, text=True
    )
    assert refused.returncode == 1
    assert "refusing the bundle" in refused.stderr


def _desktop(
    bundle: Path, pub: Path, tmp_path: Path, commands: str
) -> subprocess.CompletedProcess[str]:
    script = ROOT / "examples" / "desktop_app.py"
    store = ["--store", str(tmp_path / "shopper.db"), "--key-file", str(tmp_path / "store.key")]
    return subprocess.run(
        [sys.executable, str(script), str(bundle), str(pub), *store],
        input=commands,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )


def test_desktop_app_keeps_the_shopper_data_encrypted_across_runs(
    signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    pub = tmp_path / "signing.pub"
    pub.write_bytes(public_pem(signing_key.public_key()))
    bundle = write_tiny_bundle(tmp_path / "bundle", signing_key, now=datetime.now(timezone.utc))
    first = _desktop(bundle, pub, tmp_path, "buy a0\nbuy a1\nrec 2\ndismiss a2\nlook b0 1\nquit\n")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert "   1. Item A2 [a2]  (because you bought Item A1)" in lines
    assert "  a2 and its variants will not be suggested again" in lines
    assert "   1. Item B1 [b1]  (because you are looking at Item B0)" in lines
    assert (tmp_path / "store.key").stat().st_mode & 0o777 == 0o600
    assert b"Item A" not in (tmp_path / "shopper.db").read_bytes()
    second = _desktop(
        bundle, pub, tmp_path, "rec 1\nshortcuts\nexport before.json\nforget\nexport after.json\n"
    )
    assert second.returncode == 0, second.stderr
    lines = second.stdout.splitlines()
    assert lines[1] == "   1. Item B0 [b0]  (popular with other shoppers)"  # a2 stays dismissed
    assert any(line.startswith("  Item A0 x1  (you bought this today") for line in lines)
    before = json.loads((tmp_path / "before.json").read_text())
    assert [e["item_id"] for e in before["events"]] == ["a0", "a1"]
    assert [d["item_id"] for d in before["dismissals"]] == ["a2"]
    after = json.loads((tmp_path / "after.json").read_text())
    assert after["events"] == [] and after["dismissals"] == []
    (tmp_path / "store.key").write_bytes(bytes(32))  # another key: refused, nothing changed
    refused = _desktop(bundle, pub, tmp_path, "quit\n")
    assert refused.returncode == 1
    assert refused.stderr.startswith("cannot open the store")


def test_kiosk_app_browse_tap_also_bought_end(
    signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    from examples.kiosk.kiosk_app import create_kiosk_app

    bundle = write_kiosk_shop_bundle(tmp_path / "bundle", signing_key)
    rules = KioskRules(excluded=frozenset({TEAPOT_BLUE}))
    with Recommender.ephemeral(
        bundle,
        trusted_keys=[signing_key.public_key()],
        clock=FixedClock(datetime(2026, 12, 10, 10, tzinfo=timezone.utc)),
        rules=rules,
        watch_idle=False,
    ) as session:
        client = create_kiosk_app(session).test_client()
        page = client.get("/")
        assert page.status_code == 200 and b'id="end-session"' in page.data
        page.close()
        script = client.get("/static/kiosk.js")
        assert script.status_code == 200 and b"/api/tap" in script.data
        script.close()
        browse = client.get("/api/catalog").get_json()
        assert len(browse["items"]) == 5  # the blue teapot is excluded here
        assert browse["categories"] == ["kitchen", "photo"]
        state = client.get("/api/state").get_json()
        assert state["for_you"][0]["id"] == CAMERA
        assert state["for_you"][0]["why"] == "popular this December"
        assert state["also_bought"] == [] and state["taps"] == 0
        tapped = client.post("/api/tap", json={"item_id": CAMERA}).get_json()
        assert [c["id"] for c in tapped["also_bought"]] == [BATTERIES, CAMERA_BAG]
        assert tapped["also_bought"][0]["why"] == (
            "people who bought Cobalt Camera also bought this"
        )
        assert tapped["in_view"]["title"] == "Cobalt Camera" and tapped["taps"] == 1
        assert client.post("/api/tap", data={"item_id": KETTLE}).status_code == 415
        assert client.post("/api/tap", json={"item_id": TEAPOT_BLUE}).status_code == 404
        assert client.post("/api/tap", json={"id": KETTLE}).status_code == 400
        ended = client.post("/api/end", json={}).get_json()
        assert (ended["session"], ended["taps"]) == (1, 0)
        assert json.loads(session.export_data())["events"] == []


def test_publish_model_builds_signs_and_releases(tmp_path: Path) -> None:
    from server.app import create_app
    from server.auth import hash_token
    from server.cli import main as facetwo
    from server.config import ServerConfig
    from server.sample_store import generate_sample_store
    from server.wsgi import start_service

    shop = generate_sample_store(tmp_path / "shop", n_items=100, n_shoppers=200, seed=5)
    keys = tmp_path / "keys"
    assert (
        facetwo(["keys", "create", "--keys-dir", str(keys), "--data-dir", str(tmp_path / "reg")])
        == 0
    )
    token = "example-admin-token-" + "y" * 20
    config = ServerConfig(
        data_dir=tmp_path / "reg",
        keys_dir=keys / "online",
        admin_token_sha256=frozenset({hash_token(token)}),
    )
    script = ROOT / "examples" / "publish_model.py"
    with start_service(create_app(config), threads=2) as service:
        args = [
            "--interactions", str(shop.interactions),
            "--catalog", str(shop.catalog),
            "--signing-key", str(keys / "online" / "signing.key"),
            "--server", service.url,
            "--channel", "beta",
            "--model-version", "5",
            "--out", str(tmp_path / "bundle"),
        ]  # fmt: skip
        out = subprocess.run(
            [sys.executable, str(script), *args],
            capture_output=True,
            text=True,
            env={**os.environ, "FACETWO_ADMIN_TOKEN": token},
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[0] == "published v5 on beta"
        url = f"{service.url}/v1/channels/beta/manifest.json"
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback
            manifest = json.loads(answer.read())
    assert manifest["model_version"] == 5
    assert "context_prior.json" in manifest["files"]
    no_token = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "FACETWO_ADMIN_TOKEN"},
    )
    assert no_token.returncode == 2
