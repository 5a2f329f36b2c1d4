"""Load benchmark of the registry service: the metadata 304 path and blob downloads.

The service (waitress, as `facetwo serve` runs it) runs in its own process on 127.0.0.1; this
process is the load generator: asyncio, N keep-alive HTTP/1.1 connections, each sending its next
request as soon as the previous answer is complete. Every answer is checked: the status, and for
304s the ETag, for bodies the sha256. Each scenario is bounded in requests and in seconds, and
the server is stopped at the end (loopback only; nothing else is contacted).

    .venv/bin/python benchmarks/bench_service.py                  # defaults: 64 connections
    .venv/bin/python benchmarks/bench_service.py --connections 64 --requests 20000 --threads 4

Scenarios:
- `timestamp 304`: GET /v1/metadata/timestamp.json with If-None-Match (what a CDN or a device
  with a cached copy sends); the 1,000 req/s / p99 < 100 ms target is for this one.
- `timestamp 200`: the same without If-None-Match (469-byte body, sha256 checked).
- `blob <size>`: GET /v1/targets/stable/<sha256>.model.onnx (sha256 of every body checked).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    etag: str | None  # send If-None-Match and expect 304 with this ETag
    sha256: str | None  # expect 200 with a body of this digest


@dataclass
class Result:
    requests: int = 0
    failures: int = 0
    body_bytes: int = 0
    seconds: float = 0.0
    reconnects: int = 0
    latencies: list[float] | None = None


def prepare(data_dir: Path, keys_dir: Path, model_bytes: int) -> dict[str, str]:
    """A registry with TUF keys and one published bundle whose model has `model_bytes`."""
    from model_export.signing import load_private_key
    from model_export.writer import write_bundle
    from server.keys import create_keys, online_keys_dir
    from server.registry import Registry
    from server.tuf_repo import OnlineKeys

    registry = Registry(data_dir, keys=OnlineKeys(online_keys_dir(keys_dir)))
    create_keys(keys_dir, registry)
    key = load_private_key(online_keys_dir(keys_dir) / "signing.key")
    files = {
        "model.onnx": secrets.token_bytes(model_bytes),
        "catalog.json": json.dumps({"items": [{"id": "x", "title": "x"}]}).encode(),
    }
    bundle = write_bundle(
        data_dir.parent / "bundle",
        files=files,
        model_version=1,
        signing_keys=[key],
        model_info={"kind": "benchmark", "n_items": 1},
    )
    release = registry.publish_bundle(bundle)
    timestamp = registry.current_metadata("timestamp")
    assert timestamp is not None
    return {
        "timestamp_sha256": timestamp[1],
        "model_sha256": release.files["model.onnx"][0],
    }


def serve(data_dir: Path, keys_dir: Path, threads: int) -> None:
    """Server process: print the port, then serve until terminated."""
    import logging

    from server.app import create_app
    from server.config import ServerConfig
    from server.keys import online_keys_dir
    from server.wsgi import serve_forever

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "queue depth" notes under load
    config = ServerConfig(data_dir=data_dir, keys_dir=online_keys_dir(keys_dir))
    app = create_app(config)
    import socket

    probe = socket.socket()
    probe.bind((HOST, 0))
    port = probe.getsockname()[1]
    probe.close()
    print(port, flush=True)
    serve_forever(app, host=HOST, port=port, threads=threads)


async def _connection(
    port: int, scenario: Scenario, budget: list[int], deadline: float, result: Result
) -> None:
    head = f"GET {scenario.path} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: facetwo-bench\r\n"
    if scenario.etag is not None:
        head += f'If-None-Match: "{scenario.etag}"\r\n'
    request = (head + "\r\n").encode("ascii")
    assert result.latencies is not None
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            started = time.perf_counter()
            if writer.is_closing():  # the server closed the last one: reconnect (timed)
                reader, writer = await asyncio.open_connection(HOST, port)
                result.reconnects += 1
            writer.write(request)
            header = await reader.readuntil(b"\r\n\r\n")
            lines = header.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length) if length else b""
            result.latencies.append(time.perf_counter() - started)
            result.requests += 1
            result.body_bytes += len(body)
            if scenario.etag is not None:
                ok = status == 304 and headers.get("etag") == f'"{scenario.etag}"' and not body
            else:
                ok = status == 200 and hashlib.sha256(body).hexdigest() == scenario.sha256
            if not ok:
                result.failures += 1
            if headers.get("connection", "").lower() == "close":
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        result.failures += 1  # a dropped connection or a garbled answer counts as failed
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def run_scenario(
    port: int, scenario: Scenario, *, connections: int, requests: int, max_seconds: float
) -> Result:
    result = Result(latencies=[])
    budget = [requests]
    started = time.perf_counter()
    deadline = started + max_seconds
    await asyncio.gather(
        *(_connection(port, scenario, budget, deadline, result) for _ in range(connections))
    )
    result.seconds = time.perf_counter() - started
    return result


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--requests", type=int, default=20_000, help="per scenario (blob: /5)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="per scenario")
    parser.add_argument("--threads", type=int, default=4, help="waitress worker threads")
    parser.add_argument("--model-kib", type=int, default=256, help="size of the blob downloaded")
    parser.add_argument("--serve", nargs=2, metavar=("DATA", "KEYS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]), args.threads)
        return 0
    with tempfile.TemporaryDirectory(prefix="facetwo-bench-") as temp:
        data_dir, keys_dir = Path(temp) / "data", Path(temp) / "keys"
        digests = prepare(data_dir, keys_dir, args.model_kib * 1024)
        command = [sys.executable, __file__, "--threads", str(args.threads), "--serve"]
        server = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
            [*command, str(data_dir), str(keys_dir)], stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            timestamp, model = digests["timestamp_sha256"], digests["model_sha256"]
            blob = f"/v1/targets/stable/{model}.model.onnx"
            path = "/v1/metadata/timestamp.json"
            scenarios = [
                (Scenario("timestamp 304", path, timestamp, None), args.requests),
                (Scenario("timestamp 200", path, None, timestamp), args.requests),
                (Scenario(f"blob {args.model_kib} KiB", blob, None, model), args.requests // 5),
            ]
            asyncio.run(_wait_ready(port))
            rows = []
            for scenario, count in scenarios:
                asyncio.run(
                    run_scenario(port, scenario, connections=8, requests=200, max_seconds=5)
                )  # warm-up
                result = asyncio.run(
                    run_scenario(
                        port,
                        scenario,
                        connections=args.connections,
                        requests=count,
                        max_seconds=args.max_seconds,
                    )
                )
                rows.append((scenario.name, result))
        finally:
            server.terminate()
            server.wait(timeout=30)
            if server.stdout is not None:
                server.stdout.close()
    _print_table(rows, args)
    return 0 if all(r.failures == 0 for _, r in rows) else 1


async def _wait_ready(port: int) -> None:
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError("the service did not start")


def _print_table(rows: list[tuple[str, Result]], args: argparse.Namespace) -> None:
    from importlib.metadata import version

    print(
        f"\nfacetwo registry load benchmark, {datetime.now(timezone.utc):%Y-%m-%d}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, loopback"
    )
    print(
        f"server: 1 process, waitress {version('waitress')} with {args.threads} threads, "
        "the Flask app of create_app(), client addresses not logged; "
        f"client: 1 asyncio process, {args.connections} keep-alive connections\n"
    )
    print("| scenario | requests | failed | new connections | req/s | p50 ms | p99 ms | MiB/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, result in rows:
        latencies = result.latencies or []
        seconds = result.seconds or float("nan")
        cells = [
            name,
            str(result.requests),
            str(result.failures),
            str(result.reconnects),
            f"{result.requests / seconds:,.0f}",
            f"{_percentile(latencies, 0.50) * 1000:.1f}",
            f"{_percentile(latencies, 0.99) * 1000:.1f}",
            f"{result.body_bytes / seconds / 2**20:.1f}",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
