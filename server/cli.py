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
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from client_sdk import __version__
from client_sdk.errors import ClientError
from model_export.errors import ExportError
from model_export.signing import load_private_key, write_key_pair

from .errors import ServerError
from .training import FORMS, TrainingConfig

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_PASSPHRASE_ENV = "FACETWO_SIGNING_KEY_PASSPHRASE"  # noqa: S105 - a variable name, not a secret


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
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
    build.add_argument(
        "--form",
        choices=("auto", *FORMS),
        default="auto",
        help="model form (default: the validation split chooses)",
    )
    build.add_argument("--valid-days", type=int, default=90, help="days until the bundle expires")
    build.add_argument(
        "--reorder-priors-version",
        type=int,
        choices=(1, 2),
        default=2,
        help="reorder_priors.json version (1: for devices whose SDK reads only version 1)",
    )
    build.set_defaults(handler=_build)

    evaluate = sub.add_parser(
        "evaluate", help="offline quality through the client SDK, beside baselines"
    )
    evaluate.add_argument("--interactions", type=Path, required=True, help="interactions CSV")
    evaluate.add_argument("--protocol", choices=("strong", "temporal"), default="strong")
    evaluate.add_argument("--k", type=int, default=20, help="list length (10 is also reported)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the held-out users")
    evaluate.add_argument("--json", type=Path, help="write the metrics as JSON here")
    evaluate.set_defaults(handler=_evaluate)

    serve = sub.add_parser("serve", help="run the registry service under waitress")
    serve.add_argument("--data-dir", type=Path, required=True, help="registry data directory")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    serve.add_argument("--port", type=_port, default=8080, help="port (default 8080)")
    serve.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")
    serve.add_argument(
        "--keys-dir", type=Path, help="online signing keys (default: $FACETWO_KEYS_DIR)"
    )
    serve.set_defaults(handler=_serve)

    reorder = sub.add_parser(
        "evaluate-reorder", help="reorder-timing quality beside baselines (EVALUATION.md §2)"
    )
    reorder.add_argument("--interactions", type=Path, required=True, help="interactions CSV")
    reorder.add_argument("--catalog", type=Path, help="catalog CSV (categories for the priors)")
    reorder.add_argument("--horizon-days", type=int, default=30, help="window H (default 30)")
    reorder.add_argument("--min-buyers", type=int, default=10, help="k-anonymity of priors")
    reorder.add_argument("--json", type=Path, help="also write the metrics as JSON here")
    reorder.set_defaults(handler=_evaluate_reorder)

    publish = sub.add_parser("publish", help="upload and release a bundle on a running service")
    publish.add_argument("--bundle", type=Path, required=True, help="bundle directory")
    publish.add_argument("--server", required=True, help="service URL, e.g. http://127.0.0.1:8080")
    publish.add_argument("--channel", default="stable", help="channel (default stable)")
    publish.set_defaults(handler=_publish)

    keys = sub.add_parser("keys", help="create or rotate the registry's signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = keys_sub.add_parser("create", help="create all keys and install TUF root v1")
    rotate = keys_sub.add_parser("rotate", help="replace a role's keys: root v(N+1)")
    for action in (create, rotate):
        action.add_argument("--keys-dir", type=Path, required=True, help="the keys directory")
        action.add_argument("--data-dir", type=Path, required=True, help="registry data directory")
        action.add_argument("--root-keys", type=int, help="how many root keys (create: 1)")
        action.add_argument("--root-threshold", type=int, help="root signatures needed (1)")
    rotate.add_argument(
        "--role", required=True, choices=["root", "targets", "snapshot", "timestamp"]
    )
    create.set_defaults(handler=_keys_create)
    rotate.set_defaults(handler=_keys_rotate)

    return parser


def _port(text: str) -> int:
    """argparse type: a TCP port number."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 0..65535, found {port}")
    return port


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
    from .pipeline import DEFAULT_REORDER_TUNING, build_bundle

    if args.valid_days < 1:
        raise ValueError(f"--valid-days must be >= 1, found {args.valid_days}")
    key = load_private_key(args.signing_key, passphrase=_passphrase())
    report = build_bundle(
        args.interactions,
        args.out,
        signing_keys=[key],
        catalog_path=args.catalog,
        model_version=args.model_version,
        config=_training_config(args),
        valid_for=timedelta(days=args.valid_days),
        reorder_priors=replace(DEFAULT_REORDER_TUNING, file_version=args.reorder_priors_version),
        progress=lambda message: print(message, file=sys.stderr),
    )
    print(
        f"bundle v{report.model_version} written to {report.bundle_dir} "
        f"({report.bundle_bytes} bytes, {report.seconds:.1f}s)"
    )
    return EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    from .data import load_interactions
    from .evaluation import evaluate, write_json

    if args.k < 1:
        raise ValueError(f"--k must be >= 1, found {args.k}")
    report = evaluate(
        load_interactions(args.interactions),
        protocol=args.protocol,
        ks=sorted({10, args.k}),
        seed=args.seed,
        progress=lambda message: print(message, file=sys.stderr),
    )
    print(report.table())
    if args.json is not None:
        write_json(report, args.json)
    return EXIT_OK


def _training_config(args: argparse.Namespace) -> TrainingConfig:
    forms = FORMS if args.form == "auto" else (args.form,)
    return TrainingConfig(forms=forms)


def _serve(args: argparse.Namespace) -> int:
    from .app import create_app
    from .config import ServerConfig
    from .jobs import MetadataRefresher
    from .routes import current_registry
    from .wsgi import serve_forever

    environ = {**os.environ, "FACETWO_DATA_DIR": str(args.data_dir)}
    if args.keys_dir is not None:
        environ["FACETWO_KEYS_DIR"] = str(args.keys_dir)
    app = create_app(ServerConfig.from_env(environ=environ))
    with app.app_context():
        refresher = MetadataRefresher(current_registry()).start()
    print(
        f"serving {args.data_dir} on http://{args.host}:{args.port} (Ctrl-C stops)", file=sys.stderr
    )
    try:
        serve_forever(app, host=args.host, port=args.port, threads=args.threads)
    finally:
        refresher.stop()
    return EXIT_OK


def _publish(args: argparse.Namespace) -> int:
    from .auth import TOKEN_ENV
    from .publish_client import publish_bundle_over_http

    token = os.environ.get(TOKEN_ENV, "").split(",")[0].strip()
    if not token:
        raise ValueError(f"{TOKEN_ENV} must hold an admin token")
    release = publish_bundle_over_http(args.bundle, args.server, token=token, channel=args.channel)
    print(f"published v{release['model_version']} on {release['channel']}")
    return EXIT_OK


def _keys_create(args: argparse.Namespace) -> int:
    from .keys import create_keys, key_registry

    done = create_keys(
        args.keys_dir,
        key_registry(args.keys_dir, args.data_dir, passphrase=_passphrase()),
        root_keys=args.root_keys or 1,
        root_threshold=args.root_threshold or 1,
        passphrase=_passphrase(),
    )
    print(f"root v{done.root_version}: {done.root_path} (ship it in apps as their trust anchor)")
    print(f"root keys:   {args.keys_dir / 'offline'} (move them offline)")
    print(f"online keys: {args.keys_dir / 'online'} (serve --keys-dir); bundle key signing.pub")
    return EXIT_OK


def _keys_rotate(args: argparse.Namespace) -> int:
    from .keys import key_registry, rotate_keys

    done = rotate_keys(
        args.keys_dir,
        key_registry(args.keys_dir, args.data_dir, passphrase=_passphrase()),
        args.role,
        root_keys=args.root_keys,
        root_threshold=args.root_threshold,
        passphrase=_passphrase(),
    )
    print(f"rotated {args.role}: root v{done.root_version} written to {done.root_path}")
    for path in done.retired:
        print(f"retired {path}")
    return EXIT_OK


def _evaluate_reorder(args: argparse.Namespace) -> int:
    import json

    from .evaluation_reorder import evaluate_reorder, format_report
    from .reorder import PriorConfig

    if not 1 <= args.horizon_days <= 366:
        raise ValueError(f"--horizon-days must be in [1, 366], found {args.horizon_days}")
    report = evaluate_reorder(
        args.interactions,
        catalog_path=args.catalog,
        horizon_days=args.horizon_days,
        prior_config=PriorConfig(min_buyers=args.min_buyers),
        progress=lambda message: print(message, file=sys.stderr),
    )
    print(format_report(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(workdir=args.workdir)


if __name__ == "__main__":
    raise SystemExit(main())
