"""On-device cost of a bundle: recommend(k=20) latency, open time, bytes and peak memory.

    .venv/bin/python -m benchmarks.bench_latency [--sizes 1000 10000 100000 1000000]

For each catalogue size and model form (sparse m=32, low-rank d=64) a synthetic model (random
weights: only the shapes matter for cost) is exported to a real signed bundle. Each case then
runs in a fresh subprocess on one thread: open the bundle (verify + load), record a history of
50 purchases, and time `Recommender.recommend(k=20)` (the whole SDK path: store, controls,
onnxruntime), the bare onnxruntime call, and the same arithmetic in plain numpy float32. Peak
memory is the subprocess's max RSS above what it held after imports.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one thread everywhere, numpy included

import argparse  # noqa: E402 - after the environment above
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from client_sdk.bundle import CatalogEntry  # noqa: E402
from model_export.export import LowRankModel, SparseItemModel, export_bundle  # noqa: E402
from model_export.signing import public_pem  # noqa: E402

HISTORY = 50
K = 20
BANDWIDTH_GBPS = 11.7  # single-thread read bandwidth measured here (PERFORMANCE-NOTES.md)


def make_model(form: str, n: int, seed: int = 0) -> SparseItemModel | LowRankModel:
    rng = np.random.default_rng(seed)
    ids = tuple(f"i{i}" for i in range(n))
    base = (rng.random(n) * 1e-3).astype(np.float32)
    if form == "sparse":
        idx = rng.integers(0, n, size=(n, 32), dtype=np.int64)
        weight = rng.gamma(1.0, 0.05, size=(n, 32)).astype(np.float32)
        return SparseItemModel(ids, idx, weight, base)
    factors = (rng.normal(size=(n, 64)) / 8).astype(np.float32)
    return LowRankModel(ids, factors, base)


def build(form: str, n: int, root: Path, key: Ed25519PrivateKey) -> Path:
    model = make_model(form, n)
    rng = np.random.default_rng(1)
    histories = [
        (
            rng.choice(n, HISTORY, replace=False).astype(np.int64),
            np.ones(HISTORY, np.float32),
        )
        for _ in range(5)
    ]
    catalog = [CatalogEntry(item_id=i, title=i, group=i) for i in model.item_ids]
    path, _ = export_bundle(
        model,
        root / f"{form}-{n}",
        catalog=catalog,
        model_version=1,
        signing_keys=[key],
        sample_histories=histories,
    )
    return path


_CHILD = r"""
import json, os, resource, sys, time
import numpy as np
from client_sdk import Recommender
from client_sdk.scoring import Scorer
from benchmarks.bench_latency import make_model

bundle, pub, form = sys.argv[1:4]
n, repeats = int(sys.argv[4]), int(sys.argv[5])
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
opens = []
for _ in range(3):
    t = time.perf_counter()
    rec = Recommender.open(bundle, trusted_keys=[pub])
    opens.append(time.perf_counter() - t)
    if len(opens) < 3:
        rec.close()
rng = np.random.default_rng(2)
history = rng.choice(n, 50, replace=False)
for i in history:
    rec.record("purchase", f"i{i}")
rec.recommend(k=20)
def timed(fn, repeats):
    out = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); out.append(time.perf_counter() - t)
    return out
sdk = timed(lambda: rec.recommend(k=20), repeats)
scorer = rec._scorer
h = np.asarray(history, np.int64); w = np.ones(50, np.float32)
bare = timed(lambda: scorer.score(h, w, exclude=h, k=20), repeats)
model = make_model(form, n)
if form == "sparse":
    idx, wt, base = model.neighbor_index, model.neighbor_weight, model.base_score
    def plain():
        s = base.copy(); np.add.at(s, idx[h].ravel(), (wt[h] * w[:, None]).ravel())
        s[h] = -np.inf; top = np.argpartition(-s, 20)[:20]; return top[np.argsort(-s[top])]
else:
    a, base = model.factors, model.base_score
    def plain():
        u = w @ a[h]; s = a @ u + base
        s[h] = -np.inf; top = np.argpartition(-s, 20)[:20]; return top[np.argsort(-s[top])]
numpy_times = timed(plain, repeats)
del model
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"open": opens, "sdk": sdk, "bare": bare, "numpy": numpy_times,
                  "peak_kib": peak - base_rss}))
"""


def measure(bundle: Path, pub: Path, form: str, n: int) -> dict[str, Any]:
    repeats = 300 if n <= 100_000 else 60
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _CHILD, str(bundle), str(pub), form, str(n), str(repeats)],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    raw = json.loads(out.stdout.strip().splitlines()[-1])
    ms = {key: np.array(raw[key]) * 1e3 for key in ("open", "sdk", "bare", "numpy")}
    weights = n * (32 * 3 if form == "sparse" else 64)
    return {
        "form": form,
        "items": n,
        "model_bytes": (bundle / "model.onnx").stat().st_size,
        "open_ms": float(np.median(ms["open"])),
        "sdk_p50_ms": float(np.percentile(ms["sdk"], 50)),
        "sdk_p99_ms": float(np.percentile(ms["sdk"], 99)),
        "ort_p50_ms": float(np.percentile(ms["bare"], 50)),
        "numpy_p50_ms": float(np.percentile(ms["numpy"], 50)),
        "read_floor_ms": weights / (BANDWIDTH_GBPS * 1e9) * 1e3,
        "peak_mib": raw["peak_kib"] / 1024,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--forms", nargs="+", default=["sparse", "low-rank"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    key = Ed25519PrivateKey.generate()
    rows = []
    header = (
        f"{'form':<9}{'items':>9}{'model MB':>10}{'open ms':>9}{'sdk p50':>9}{'sdk p99':>9}"
        f"{'ort p50':>9}{'numpy p50':>10}{'floor ms':>9}{'peak MiB':>9}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="facetwo-latency-") as tmp:
        pub = Path(tmp) / "signing.pub"
        pub.write_bytes(public_pem(key.public_key()))
        for n in args.sizes:
            for form in args.forms:
                bundle = build(form, n, Path(tmp), key)
                row = measure(bundle, pub, form, n)
                rows.append(row)
                print(
                    f"{form:<9}{n:>9,}{row['model_bytes'] / 1e6:>10.2f}{row['open_ms']:>9.1f}"
                    f"{row['sdk_p50_ms']:>9.2f}{row['sdk_p99_ms']:>9.2f}{row['ort_p50_ms']:>9.2f}"
                    f"{row['numpy_p50_ms']:>10.2f}{row['read_floor_ms']:>9.2f}"
                    f"{row['peak_mib']:>9.1f}",
                    flush=True,
                )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
