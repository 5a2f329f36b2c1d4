"""Training time and peak memory: ml-100k, and a synthetic log of 200k users x 50k items.

    .venv/bin/python -m benchmarks.bench_training [--users 200000 --items 50000] [--skip-ml]

Each run is `server.training.train_model` with its full validation search (forms, sizes, l2,
popularity weight, interest decay) in a fresh subprocess, timed wall-clock, with the peak RSS.
The synthetic log: items in clusters of 100 with Zipf popularity; each user draws 1-3 clusters
and about 25 items, 90% from their clusters and 10% from the whole catalogue.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.datasets import ML_100K, convert_ml_100k
from server.data import Interactions

ROOT = Path(__file__).resolve().parent.parent


def synthetic_log(users: int, items: int, *, per_user: float = 25.0, seed: int = 0) -> Interactions:
    """A clustered purchase log as arrays (no CSV: only training is timed)."""
    rng = np.random.default_rng(seed)
    cluster_size = 100
    clusters = max(1, items // cluster_size)
    counts = np.maximum(3, rng.poisson(per_user, users))
    user = np.repeat(np.arange(users, dtype=np.int64), counts)
    home = rng.integers(0, clusters, size=(users, 3))
    choice = home[user, rng.integers(0, 3, size=user.size)]
    zipf = np.minimum(rng.zipf(1.3, size=user.size) - 1, cluster_size - 1)
    item = np.minimum(choice * cluster_size + zipf, items - 1)
    stray = rng.random(user.size) < 0.1
    item[stray] = np.minimum(rng.zipf(1.2, size=int(stray.sum())) - 1, items - 1)
    stamp = 1_700_000_000 + rng.integers(0, 365 * 86_400, size=user.size)
    n = user.size
    return Interactions(
        users=tuple(f"u{i}" for i in range(users)),
        items=tuple(f"i{i}" for i in range(items)),
        user=user,
        item=item.astype(np.int64),
        timestamp=stamp.astype(np.int64),
        event=np.full(n, 2, np.int8),
        quantity=np.ones(n),
        weight=np.ones(n),
        source="synthetic",
    )


_CHILD = r"""
import json, resource, sys, time
from server.data import load_interactions
from server.training import train_model
from benchmarks.bench_training import synthetic_log
kind = sys.argv[1]
if kind == "csv":
    interactions = load_interactions(sys.argv[2])
else:
    interactions = synthetic_log(int(sys.argv[2]), int(sys.argv[3]))
started = time.perf_counter()
result = train_model(interactions, progress=lambda m: print(m, file=sys.stderr, flush=True))
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak, "rows": len(interactions),
                  "form": result.choice.form, "size": result.choice.size,
                  "validation_ndcg": result.choice.ndcg}))
"""


def run(args: list[str]) -> dict[str, object]:
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _CHILD, *args],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def median_run(args: list[str], repeat: int) -> dict[str, object]:
    """`repeat` runs in fresh subprocesses; the one with the median time (its seconds listed)."""
    runs = sorted(
        (run(args) for _ in range(max(1, repeat))), key=lambda r: float(str(r["seconds"]))
    )
    middle = dict(runs[len(runs) // 2])
    middle["all_seconds"] = [round(float(str(r["seconds"])), 1) for r in runs]
    return middle


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--skip-ml", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each log (median shown)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="facetwo-train-") as tmp:
        if not args.skip_ml and ML_100K.exists():
            csv = convert_ml_100k(Path(tmp) / "ml.csv")
            rows.append(("ml-100k", median_run(["csv", str(csv)], args.repeat)))
        if not args.skip_synthetic:
            name = f"synthetic {args.users // 1000}k x {args.items // 1000}k"
            synthetic = ["synthetic", str(args.users), str(args.items)]
            rows.append((name, median_run(synthetic, args.repeat)))
    print(f"{'log':<22}{'rows':>11}{'train s':>9}{'peak MiB':>10}  chosen")
    for name, r in rows:
        chosen = (
            f"{r['form']} {r['size']} (validation NDCG@20 {float(str(r['validation_ndcg'])):.3f})"
        )
        print(
            f"{name:<22}{int(str(r['rows'])):>11,}{float(str(r['seconds'])):>9.1f}"
            f"{float(str(r['peak_mib'])):>10.0f}  {chosen}"
        )
        every = r.get("all_seconds")
        if isinstance(every, list) and len(every) > 1:
            print(f"{'':<22}runs: {every} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
