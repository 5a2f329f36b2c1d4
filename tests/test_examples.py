"""The examples run as a user would run them."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from model_export.signing import public_pem
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
