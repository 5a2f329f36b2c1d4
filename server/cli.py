"""The `facetwo` command line. One place catches the packages' base errors and exits non-zero
with a one-line reason on stderr.

`main(argv)` returns the exit status, so tests call it directly.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from client_sdk import __version__
from client_sdk.errors import ClientError
from model_export.errors import ExportError
from model_export.signing import load_private_key, write_key_pair

from .errors import ServerError
from .training import TrainingConfig

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_BUILT = 0, 1, 2, 3
_PASSPHRASE_ENV = "FACETWO_SIGNING_KEY_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
_NOT_BUILT = {
    "evaluate": "offline quality evaluation (issue #7)",
    "evaluate-reorder": "reorder-timing evaluation (issue #5)",
    "publish": "upload to a running service over its admin API (issue #3)",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in _NOT_BUILT:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        status: int = args.handler(args)
        return status
    except (ServerError, ClientError, ExportError) as exc:
        print(f"facetwo {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (OSError, ValueError) as exc:
        print(f"facetwo {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"facetwo {args.command}: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facetwo",
        description="Privacy-first, on-device recommendations: train, sign, serve, verify.",
    )
    parser.add_argument("--version", action="version", version=f"facetwo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="the whole journey on a built-in sample shop (start here)")
    demo.add_argument(
        "--workdir", type=Path, help="keep the demo's files here (default: a temp dir)"
    )
    demo.set_defaults(handler=_demo)

    keygen = sub.add_parser("keygen", help="create an Ed25519 signing key pair")
    keygen.add_argument("--out", type=Path, required=True, help="directory for signing.key/.pub")
    keygen.set_defaults(handler=_keygen)

    build = sub.add_parser("build", help="train, export and sign a bundle from CSV files")
    build.add_argument("--interactions", type=Path, required=True, help="interactions CSV")
    build.add_argument("--catalog", type=Path, help="catalog CSV (titles, groups, consumables)")
    build.add_argument("--signing-key", type=Path, required=True, help="signing.key from keygen")
    build.add_argument("--out", type=Path, required=True, help="bundle directory to create")
    build.add_argument("--model-version", type=int, help="release number (default: UTC time)")
    build.add_argument("--neighbors", type=int, default=32, help="weights kept per item")
    build.add_argument("--valid-days", type=int, default=90, help="days until the bundle expires")
    build.set_defaults(handler=_build)

    serve = sub.add_parser("serve", help="run the registry service under waitress")
    serve.add_argument("--data-dir", type=Path, required=True, help="registry data directory")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")
    serve.set_defaults(handler=_serve)

    for name, what in _NOT_BUILT.items():
        stub = sub.add_parser(name, help=f"not built yet: {what}", add_help=False)
        stub.set_defaults(handler=_not_built)
    return parser


def _not_built(args: argparse.Namespace) -> int:
    print(f"facetwo {args.command}: not built yet ({_NOT_BUILT[args.command]})", file=sys.stderr)
    return EXIT_NOT_BUILT


def _passphrase() -> bytes | None:
    value = os.environ.get(_PASSPHRASE_ENV)
    return value.encode("utf-8") if value else None


def _keygen(args: argparse.Namespace) -> int:
    paths = write_key_pair(args.out, passphrase=_passphrase())
    print(f"private key: {paths.private_key} (keep it secret; mode 0600)")
    print(f"public key:  {paths.public_key} (give it to devices as a trusted key)")
    print(f"key id:      {paths.key_id[:16]}")
    return EXIT_OK


def _build(args: argparse.Namespace) -> int:
    from .pipeline import build_bundle

    if args.valid_days < 1:
        raise ValueError(f"--valid-days must be >= 1, found {args.valid_days}")
    key = load_private_key(args.signing_key, passphrase=_passphrase())
    report = build_bundle(
        args.interactions,
        args.out,
        signing_keys=[key],
        catalog_path=args.catalog,
        model_version=args.model_version,
        config=TrainingConfig(neighbors=args.neighbors),
        valid_for=timedelta(days=args.valid_days),
        progress=lambda message: print(message, file=sys.stderr),
    )
    print(
        f"bundle v{report.model_version} written to {report.bundle_dir} "
        f"({report.bundle_bytes} bytes, {report.seconds:.1f}s)"
    )
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from .app import create_app
    from .config import ServerConfig
    from .wsgi import serve_forever

    config = ServerConfig(data_dir=args.data_dir)
    print(
        f"serving {args.data_dir} on http://{args.host}:{args.port} (Ctrl-C stops)", file=sys.stderr
    )
    serve_forever(create_app(config), host=args.host, port=args.port, threads=args.threads)
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(workdir=args.workdir)


if __name__ == "__main__":
    raise SystemExit(main())
