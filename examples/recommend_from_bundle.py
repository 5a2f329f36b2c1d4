"""Open a signed bundle on this device and recommend from a few private events.

    python examples/recommend_from_bundle.py BUNDLE_DIR signing.pub --purchase sku-00042

Only the client SDK is used (a plain `pip install facetwo`). The bundle is verified offline
against the trusted public key before anything in it is parsed, so a bundle copied from a USB
stick is as safe as one downloaded by the Updater.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from client_sdk import BundleError, Recommender


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundle", type=Path, help="bundle directory")
    parser.add_argument("public_key", type=Path, help="trusted signing.pub")
    parser.add_argument("--purchase", action="append", default=[], help="an item id bought")
    parser.add_argument("--view", action="append", default=[], help="an item id viewed")
    parser.add_argument("-k", type=int, default=10, help="how many suggestions")
    args = parser.parse_args(argv)
    try:
        rec = Recommender.open(args.bundle, trusted_keys=[args.public_key])
    except BundleError as exc:
        print(f"refusing the bundle: {exc}", file=sys.stderr)
        return 1
    with rec:
        for item_id in args.purchase:
            rec.record("purchase", item_id)
        for item_id in args.view:
            rec.record("view", item_id)
        for rank, item in enumerate(rec.recommend(k=args.k), start=1):
            print(f"{rank:2}. {item.title}  ({item.reasons[0].text})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
