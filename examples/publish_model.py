"""The backend side: build a bundle from CSV files, sign it, publish it to a running registry.

    export FACETWO_ADMIN_TOKEN=...          # an admin token of the running service
    python examples/publish_model.py --interactions logs.csv --catalog catalog.csv \\
        --signing-key keys/online/signing.key --server http://127.0.0.1:8080 --channel beta

It trains on the pseudonymous logs, exports and quantizes the model, checks parity, adds the
aggregate priors (popular per month and part of the day, every cell counting at least ten
shoppers), signs everything with the bundle key, then uploads the files by sha256 over the
service's admin API and releases them on the channel in one step (`server.publish_client`,
the same code as `facetwo publish`). Devices pick the release up on their next update.
Needs `pip install 'facetwo[server]'`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from model_export.errors import ExportError
from model_export.signing import load_private_key
from server.auth import TOKEN_ENV
from server.errors import ServerError
from server.pipeline import build_bundle, default_model_version
from server.publish_client import publish_bundle_over_http


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interactions", type=Path, required=True, help="interactions CSV")
    parser.add_argument("--catalog", type=Path, help="catalog CSV")
    parser.add_argument("--signing-key", type=Path, required=True, help="the bundle key")
    parser.add_argument("--server", required=True, help="the registry, e.g. http://127.0.0.1:8080")
    parser.add_argument("--channel", default="stable")
    parser.add_argument("--out", type=Path, help="keep the bundle here (default: a temp dir)")
    parser.add_argument("--model-version", type=int, help="default: the UTC build time")
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "").split(",")[0].strip()
    if not token:
        print(f"{TOKEN_ENV} must hold an admin token of the service", file=sys.stderr)
        return 2
    key = load_private_key(args.signing_key)
    with tempfile.TemporaryDirectory(prefix="facetwo-publish-") as tmp:
        out = args.out or Path(tmp) / "bundle"
        try:
            report = build_bundle(
                args.interactions,
                out,
                signing_keys=[key],
                catalog_path=args.catalog,
                model_version=args.model_version or default_model_version(),
                progress=lambda message: print(message, file=sys.stderr),
            )
            release = publish_bundle_over_http(
                report.bundle_dir, args.server, token=token, channel=args.channel
            )
        except (ServerError, ExportError, ValueError) as exc:
            print(f"publish failed: {exc}", file=sys.stderr)
            return 1
    files = ", ".join(sorted(p.name for p in report.bundle_dir.iterdir())) if args.out else ""
    print(f"published v{release['model_version']} on {release['channel']}")
    if files:
        print(f"bundle kept in {report.bundle_dir}: {files}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
