"""On-device cost of a bundle: recommend(k=20) latency, open time, bytes and peak memory.

    .venv/bin/python -m benchmarks.bench_latency [--sizes 1000 10000 100000 1000000] [--bare]

For each catalogue size and model form (sparse m=32, low-rank d=64) a synthetic model (random
weights: only the shapes matter for cost) is exported to a real signed bundle, with a catalogue
of 40 categories and, as `facetwo build` ships them, reorder priors and a context prior listing
one item in twenty. Each case then runs in a fresh subprocess on one thread: open the bundle
(verify + load; the median of 3, and once more step by step; `ready`: until the side files,
parsed in a background thread after open returns, are ready too), record a history of 50
purchases, and time `Recommender.recommend(k=20)` (the whole SDK path: store, controls,
onnxruntime, reasons), the bare onnxruntime call, and the same arithmetic in plain numpy
float32. Peak memory is the subprocess's own high-water RSS (VmHWM) above what it held after
imports, taken before the step-by-step open and the numpy baseline. `--bare`:
a catalogue of ids alone and no side files (the bundles of the first measurements in issue 7).
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

from client_sdk.bundle import CONTEXT_PRIOR_FILE, REORDER_PRIORS_FILE, CatalogEntry  # noqa: E402
from client_sdk.context_prior import ContextPrior, encode_context_prior  # noqa: E402
from client_sdk.priors import (  # noqa: E402
    DueParams,
    IntervalPrior,
    ItemPrior,
    ReorderPriors,
    encode_priors,
)
from model_export.export import (  # noqa: E402
    LowRankModel,
    LowRankSparseModel,
    SparseItemModel,
    export_bundle,
)
from model_export.signing import public_pem  # noqa: E402

HISTORY = 50
K = 20
CATEGORIES = 40
LISTED_SHARE = 0.05
"""The share of items with their own reorder prior and context-prior counts: on the Complete
Journey sample `facetwo build` lists 1,127 of 20,902 items (5.4%), the rest by category."""
STEPS = ("verify", "catalog", "session", "side")
"""`open`, step by step: read + verify every byte, parse the catalogue, create the onnxruntime
session, parse the side files (reorder priors, context prior)."""
BANDWIDTH_GBPS = 11.7  # single-thread read bandwidth measured here (PERFORMANCE-NOTES.md)


def make_model(
    form: str, n: int, seed: int = 0
) -> SparseItemModel | LowRankModel | LowRankSparseModel:
    rng = np.random.default_rng(seed)
    ids = tuple(f"i{i}" for i in range(n))
    base = (rng.random(n) * 1e-3).astype(np.float32)
    if form == "sparse":
        idx = rng.integers(0, n, size=(n, 32), dtype=np.int64)
        weight = rng.gamma(1.0, 0.05, size=(n, 32)).astype(np.float32)
        return SparseItemModel(ids, idx, weight, base)
    factors = (rng.normal(size=(n, 64)) / 8).astype(np.float32)
    if form == "low-rank":
        return LowRankModel(ids, factors, base)
    idx = rng.integers(0, n, size=(n, 32), dtype=np.int64)  # the residual: either sign
    weight = rng.normal(0.0, 0.05, size=(n, 32)).astype(np.float32)
    return LowRankSparseModel(ids, factors, idx, weight, base)


def build(form: str, n: int, root: Path, key: Ed25519PrivateKey, *, bare: bool = False) -> Path:
    """Export a signed bundle; `bare`: a catalogue of ids alone and no side files."""
    model = make_model(form, n)
    rng = np.random.default_rng(1)
    histories = [
        (
            rng.choice(n, HISTORY, replace=False).astype(np.int64),
            np.ones(HISTORY, np.float32),
        )
        for _ in range(5)
    ]
    catalog = [
        CatalogEntry(i, i) if bare else CatalogEntry(i, f"Product {i}", f"c{j % CATEGORIES}")
        for j, i in enumerate(model.item_ids)
    ]
    path, _ = export_bundle(
        model,
        root / f"{form}-{n}",
        catalog=catalog,
        model_version=1,
        signing_keys=[key],
        sample_histories=histories,
        extra_files=None if bare else side_files(model.item_ids),
    )
    return path


def side_files(item_ids: Sequence[str]) -> dict[str, bytes]:
    """Reorder priors and a context prior of the size `facetwo build` ships: one item in
    twenty listed in each (every count at the k-anonymity floor), the rest by category."""
    listed = int(len(item_ids) * LISTED_SHARE)
    interval = IntervalPrior("item", 20, 3.0, 0.5, (5.0, 10.0, 20.0, 40.0, 80.0))
    prior = ItemPrior("item", 50, 0.4, 1.0, interval)
    category = ItemPrior(
        "category",
        500,
        0.4,
        1.0,
        IntervalPrior("category", 200, 3.0, 0.5, (5.0, 10.0, 20.0, 40.0, 80.0)),
    )
    shop = ItemPrior(
        "shop", 5000, 0.4, 1.0, IntervalPrior("shop", 2000, 3.0, 0.5, (5.0, 10.0, 20.0, 40.0, 80.0))
    )
    priors = ReorderPriors(
        min_buyers=10,
        params=DueParams(),
        shop=shop,
        categories={f"c{c}": category for c in range(CATEGORIES)},
        items={i: prior for i in item_ids[:listed]},
        item_categories={i: f"c{j % CATEGORIES}" for j, i in enumerate(item_ids) if j >= listed},
    )
    counts = (100, *([10] * 16))
    context = ContextPrior(
        10, 10.0, 0, (50_000,) * 12, (150_000,) * 4, {i: counts for i in item_ids[:listed]}
    )
    return {
        REORDER_PRIORS_FILE: encode_priors(priors),
        CONTEXT_PRIOR_FILE: encode_context_prior(context),
    }


_CHILD = r"""
import gc, json, resource, sys, time
import numpy as np
from client_sdk import Recommender
from client_sdk.bundle import MODEL_FILE, read_bundle
from client_sdk.context_prior import bundle_context_popularity
from client_sdk.priors import usable_priors
from client_sdk.scoring import Scorer
from benchmarks.bench_latency import make_model

def high_water_kib():
    # VmHWM is this process's own peak; ru_maxrss would carry the parent's over the exec.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

bundle, pub, form = sys.argv[1:4]
n, repeats = int(sys.argv[4]), int(sys.argv[5])
base_kib = high_water_kib()
opens, readies = [], []
for _ in range(3):
    t = time.perf_counter()
    rec = Recommender.open(bundle, trusted_keys=[pub])
    opens.append(time.perf_counter() - t)
    rec._extras.wait()  # the side files, parsed in the background
    readies.append(time.perf_counter() - t)
    if len(opens) < 3:
        rec.close()
        del rec
        gc.collect()
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
peak_kib = high_water_kib() - base_kib  # the SDK's alone: before the steps and numpy below
rec.close()
del rec, scorer
gc.collect()
steps = {}
def step(name, fn):
    t = time.perf_counter(); out = fn(); steps[name] = time.perf_counter() - t; return out
bundle_ = step("verify", lambda: read_bundle(bundle, [pub]))
catalog_ = step("catalog", bundle_.catalog)
step("session", lambda: Scorer(bundle_.files[MODEL_FILE], len(catalog_)))
step("side", lambda: (usable_priors(bundle_), bundle_context_popularity(bundle_, catalog_)))
del bundle_, catalog_
model = make_model(form, n)
if form == "sparse":
    idx, wt, base = model.neighbor_index, model.neighbor_weight, model.base_score
    def plain():
        s = base.copy(); np.add.at(s, idx[h].ravel(), (wt[h] * w[:, None]).ravel())
        s[h] = -np.inf; top = np.argpartition(-s, 20)[:20]; return top[np.argsort(-s[top])]
elif form == "low-rank":
    a, base = model.factors, model.base_score
    def plain():
        u = w @ a[h]; s = a @ u + base
        s[h] = -np.inf; top = np.argpartition(-s, 20)[:20]; return top[np.argsort(-s[top])]
else:
    a, base = model.factors, model.base_score
    idx, wt = model.neighbor_index, model.neighbor_weight
    def plain():
        u = w @ a[h]; s = a @ u + base
        np.add.at(s, idx[h].ravel(), (wt[h] * w[:, None]).ravel())
        s[h] = -np.inf; top = np.argpartition(-s, 20)[:20]; return top[np.argsort(-s[top])]
numpy_times = timed(plain, repeats)
print(json.dumps({"open": opens, "ready": readies, "steps": steps, "sdk": sdk, "bare": bare,
                  "numpy": numpy_times, "peak_kib": peak_kib}))
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
    ms = {key: np.array(raw[key]) * 1e3 for key in ("open", "ready", "sdk", "bare", "numpy")}
    weights = n * {"sparse": 32 * 3, "low-rank": 64}.get(form, 64 + 32 * 3)
    return {
        "form": form,
        "items": n,
        "model_bytes": (bundle / "model.onnx").stat().st_size,
        "open_ms": float(np.median(ms["open"])),
        "ready_ms": float(np.median(ms["ready"])),
        **{f"{name}_ms": raw["steps"][name] * 1e3 for name in STEPS},
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
    parser.add_argument("--forms", nargs="+", default=["sparse", "low-rank", "low-rank+sparse"])
    parser.add_argument(
        "--bare", action="store_true", help="catalogue of ids alone, no side files (issue 7's base)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    key = Ed25519PrivateKey.generate()
    rows = []
    header = (
        f"{'form':<16}{'items':>9}{'model MB':>9}{'open ms':>9}{'ready':>8}"
        + "".join(f"{name:>8}" for name in STEPS)
        + f"{'sdk p50':>8}{'sdk p99':>8}{'ort p50':>8}{'numpy':>8}{'floor':>7}{'peak MiB':>9}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="facetwo-latency-") as tmp:
        pub = Path(tmp) / "signing.pub"
        pub.write_bytes(public_pem(key.public_key()))
        for n in args.sizes:
            for form in args.forms:
                bundle = build(form, n, Path(tmp), key, bare=args.bare)
                row = measure(bundle, pub, form, n)
                rows.append(row)
                print(
                    f"{form:<16}{n:>9,}{row['model_bytes'] / 1e6:>9.2f}{row['open_ms']:>9.1f}"
                    f"{row['ready_ms']:>8.1f}"
                    + "".join(f"{row[f'{name}_ms']:>8.1f}" for name in STEPS)
                    + f"{row['sdk_p50_ms']:>8.2f}{row['sdk_p99_ms']:>8.2f}"
                    f"{row['ort_p50_ms']:>8.2f}{row['numpy_p50_ms']:>8.2f}"
                    f"{row['read_floor_ms']:>7.2f}{row['peak_mib']:>9.1f}",
                    flush=True,
                )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
