"""Tests for server.wsgi: a real waitress server on loopback, fetched with urllib."""

from __future__ import annotations

import hashlib
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import pytest
from flask import Flask

from server.app import create_app
from server.config import ServerConfig
from server.registry import Registry, Release
from server.wsgi import ServiceHandle, serve_forever, start_service

FILES = {"model.onnx": b"\x08\x01fake-onnx-graph", "catalog.json": b'{"items": ["a", "b"]}'}

# Never route loopback requests through a proxy configured in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def write_bundle(directory: Path, model_version: int) -> Path:
    """Write a tiny fake bundle: correct sha256/size entries, arbitrary signature bytes."""
    directory.mkdir(parents=True)
    entries = {
        n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in FILES.items()
    }
    manifest = {"format_version": 1, "model_version": model_version, "files": entries}
    for name, data in FILES.items():
        (directory / name).write_bytes(data)
    (directory / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (directory / "manifest.sig").write_bytes(b"\x03" * 64)
    return directory


def get(url: str, data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET (or POST with ``data``) ``url``; return status, lower-cased headers and body."""
    request = urllib.request.Request(url, data=data)  # noqa: S310 - loopback http only
    try:
        with _OPENER.open(request, timeout=5) as response:
            return response.status, _lower(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, _lower(error.headers.items()), error.read()


def _lower(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


def port_is_closed(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return create_app(ServerConfig(data_dir=tmp_path / "data", max_request_bytes=1000))


@pytest.fixture
def release(tmp_path: Path, app: Flask) -> Release:
    return Registry(tmp_path / "data").publish_bundle(write_bundle(tmp_path / "v1", 1))


def test_serves_a_bundle_over_loopback(app: Flask, release: Release, tmp_path: Path) -> None:
    service = start_service(app, host="127.0.0.1", port=0, threads=2)
    try:
        assert service.port > 0
        assert service.url == f"http://127.0.0.1:{service.port}"
        status, headers, body = get(f"{service.url}/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert headers["server"] == "facetwo"
        _, headers, manifest = get(f"{service.url}/v1/channels/stable/manifest.json")
        assert manifest == (tmp_path / "v1" / "manifest.json").read_bytes()
        assert headers["etag"] == f'"{release.manifest_sha256}"'
        _, _, signature = get(f"{service.url}/v1/channels/stable/manifest.sig")
        assert signature == b"\x03" * 64
        for name, entry in json.loads(manifest)["files"].items():
            status, headers, body = get(f"{service.url}/v1/blobs/{entry['sha256']}")
            assert status == 200
            assert body == FILES[name]
            assert "immutable" in headers["cache-control"]
            assert "set-cookie" not in headers
        status, headers, body = get(f"{service.url}/v1/blobs/" + "0" * 64)
        assert status == 404
        assert json.loads(body)["error"]["code"] == "unknown_blob"
        status, _, body = get(f"{service.url}/healthz", data=b"x" * 5000)
        assert status == 413
    finally:
        service.stop()
    assert port_is_closed(service.port)


def test_context_manager_and_repeated_stop(app: Flask) -> None:
    with start_service(app) as service:
        assert isinstance(service, ServiceHandle)
        assert service.host == "127.0.0.1"
        assert get(f"{service.url}/healthz")[0] == 200
    assert port_is_closed(service.port)
    service.stop()  # idempotent


def test_ipv6_loopback_url(app: Flask) -> None:
    if not socket.has_ipv6:  # pragma: no cover - depends on the machine
        pytest.skip("no IPv6")
    try:
        service = start_service(app, host="::1")
    except OSError:  # pragma: no cover - IPv6 disabled
        pytest.skip("cannot bind ::1")
    with service:
        assert service.url == f"http://[::1]:{service.port}"
        assert get(f"{service.url}/healthz")[0] == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "example.com"])  # noqa: S104
def test_non_loopback_hosts_are_refused(app: Flask, host: str) -> None:
    with pytest.raises(ValueError, match="host"):
        start_service(app, host=host)
    with pytest.raises(ValueError, match="host"):
        serve_forever(app, host=host)


def test_argument_ranges(app: Flask) -> None:
    with pytest.raises(ValueError, match="port"):
        start_service(app, port=70000)
    with pytest.raises(ValueError, match="threads"):
        start_service(app, threads=0)


def test_http_fetcher_against_the_service(app: Flask, release: Release) -> None:
    from client_sdk.errors import FetchError, HttpStatusError
    from client_sdk.updater import HttpFetcher

    fetcher = HttpFetcher(timeout_seconds=5)
    with start_service(app) as service:
        data = fetcher.fetch(f"{service.url}/v1/blobs/{release.manifest_sha256}", max_bytes=10_000)
        assert hashlib.sha256(data).hexdigest() == release.manifest_sha256
        with pytest.raises(HttpStatusError) as missing:
            fetcher.fetch(f"{service.url}/v1/metadata/2.root.json", max_bytes=10_000)
        assert missing.value.status_code == 404
        with pytest.raises(FetchError, match="over the cap"):
            fetcher.fetch(f"{service.url}/v1/blobs/{release.manifest_sha256}", max_bytes=10)


def test_bodies_over_the_route_limit_are_refused_in_json(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path / "d", max_request_bytes=1000, max_upload_bytes=2000)
    with start_service(create_app(config)) as service:
        for size in (1500, 5000):  # over the 1000 of a non-upload route, whatever the upload limit
            status, headers, body = get(f"{service.url}/healthz", data=b"x" * size)
            assert status == 413
            assert headers["content-type"] == "application/json"
            assert json.loads(body)["error"]["code"] == "request_entity_too_large"


def test_304_keeps_the_connection_open(app: Flask, release: Release) -> None:
    import http.client

    with start_service(app) as service:
        connection = http.client.HTTPConnection(service.host, service.port, timeout=5)
        try:
            etag = f'"{release.manifest_sha256}"'
            for _ in range(3):
                connection.request(
                    "GET", "/v1/channels/stable/manifest.json", headers={"If-None-Match": etag}
                )
                response = connection.getresponse()
                assert (response.status, response.read()) == (304, b"")
                assert response.getheader("Connection") is None  # kept alive
            connection.request(
                "GET",
                "/v1/channels/stable/manifest.json",
                headers={"If-None-Match": etag, "Connection": "close"},
            )
            response = connection.getresponse()
            response.read()
            assert (response.status, response.getheader("Connection")) == (304, "close")
        finally:
            connection.close()
