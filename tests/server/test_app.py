"""Tests for server.app, server.routes and server.config, driven through app.test_client()."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from server.app import create_app
from server.config import ServerConfig
from server.errors import ApiError
from server.registry import Registry, Release

FILES = {"model.onnx": b"\x08\x01fake-onnx-graph", "catalog.json": b'{"items": ["a", "b"]}'}
SIGNATURE = b"\x02" * 64


def write_bundle(directory: Path, model_version: int, files: dict[str, bytes] = FILES) -> Path:
    """Write a tiny fake bundle: correct sha256/size entries, arbitrary signature bytes."""
    directory.mkdir(parents=True)
    entries = {
        n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in files.items()
    }
    manifest = {"format_version": 1, "model_version": model_version, "files": entries}
    manifest |= {"created_at": "2026-01-01T00:00:00Z", "expires_at": "2027-01-01T00:00:00Z"}
    for name, data in files.items():
        (directory / name).write_bytes(data)
    (directory / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (directory / "manifest.sig").write_bytes(SIGNATURE)
    return directory


@pytest.fixture
def config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(data_dir=tmp_path / "data", max_request_bytes=1000)


@pytest.fixture
def app(config: ServerConfig) -> Flask:
    return create_app(config)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def published(app: Flask, config: ServerConfig, tmp_path: Path) -> Release:
    # A separate Registry on the same directory: state lives on disk, not in the app.
    return Registry(config.data_dir).publish_bundle(write_bundle(tmp_path / "v1", 1))


def fetch(client: FlaskClient, url: str, method: str = "GET", **kwargs: Any) -> TestResponse:
    """Make a request, read the body, close the response and check it sets no cookie."""
    response = client.open(url, method=method, **kwargs)
    try:
        response.get_data()
    finally:
        response.close()
    assert "Set-Cookie" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    return response


def assert_error(response: TestResponse, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert isinstance(body, dict)
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return dict(body["error"])


def test_healthz(client: FlaskClient) -> None:
    response = fetch(client, "/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_publish_then_fetch_like_a_device(
    client: FlaskClient, published: Release, tmp_path: Path
) -> None:
    manifest = fetch(client, "/v1/channels/stable/manifest.json")
    assert manifest.status_code == 200
    assert manifest.mimetype == "application/json"
    assert manifest.data == (tmp_path / "v1" / "manifest.json").read_bytes()
    assert manifest.headers["Facetwo-Signature-Sha256"] == published.signature_sha256
    signature = fetch(client, "/v1/channels/stable/manifest.sig")
    assert signature.data == SIGNATURE
    assert signature.mimetype == "application/octet-stream"
    assert signature.headers["Facetwo-Manifest-Sha256"] == published.manifest_sha256
    for name, entry in json.loads(manifest.data)["files"].items():
        blob = fetch(client, f"/v1/blobs/{entry['sha256']}")
        assert blob.status_code == 200
        assert blob.data == FILES[name]
        assert blob.mimetype == "application/octet-stream"
        assert blob.content_length == entry["size"]
    for digest in (published.manifest_sha256, published.signature_sha256):
        assert hashlib.sha256(fetch(client, f"/v1/blobs/{digest}").data).hexdigest() == digest


@pytest.mark.parametrize("name", ["manifest.json", "manifest.sig"])
def test_channel_files_revalidate_with_etag(
    client: FlaskClient, published: Release, name: str
) -> None:
    url = f"/v1/channels/stable/{name}"
    first = fetch(client, url)
    digest = published.manifest_sha256 if name == "manifest.json" else published.signature_sha256
    assert first.headers["ETag"] == f'"{digest}"'
    assert first.headers["Cache-Control"] == "no-cache"
    again = fetch(client, url, headers={"If-None-Match": f'"{digest}"'})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == f'"{digest}"'
    other = fetch(client, url, headers={"If-None-Match": '"' + "0" * 64 + '"'})
    assert other.status_code == 200
    assert other.data == first.data


def test_new_release_changes_the_manifest(
    client: FlaskClient, published: Release, config: ServerConfig, tmp_path: Path
) -> None:
    old_etag = f'"{published.manifest_sha256}"'
    newer = Registry(config.data_dir).publish_bundle(write_bundle(tmp_path / "v2", 2))
    response = fetch(
        client, "/v1/channels/stable/manifest.json", headers={"If-None-Match": old_etag}
    )
    assert response.status_code == 200
    assert response.headers["ETag"] == f'"{newer.manifest_sha256}"'
    assert json.loads(response.data)["model_version"] == 2


def test_blob_caching_headers(client: FlaskClient, published: Release) -> None:
    digest, size = published.files["model.onnx"]
    url = f"/v1/blobs/{digest}"
    response = fetch(client, url)
    assert response.headers["ETag"] == f'"{digest}"'
    cache = response.cache_control
    assert cache.public
    assert cache.max_age == 31_536_000
    assert cache.immutable
    assert not cache.no_cache
    revalidated = fetch(client, url, headers={"If-None-Match": f'"{digest}"'})
    assert revalidated.status_code == 304
    assert revalidated.data == b""
    partial = fetch(client, url, headers={"Range": "bytes=0-3"})
    assert partial.status_code == 206
    assert partial.data == FILES["model.onnx"][:4]
    head = fetch(client, url, method="HEAD")
    assert head.status_code == 200
    assert head.data == b""
    assert head.content_length == size


@pytest.mark.parametrize("digest", ["abc", "A" * 64, "g" * 64, "a" * 65, "%2e%2e" + "a" * 62])
def test_malformed_digest_is_400(client: FlaskClient, digest: str) -> None:
    assert_error(fetch(client, f"/v1/blobs/{digest}"), 400, "invalid_digest")


def test_unknown_and_unpublished_blobs_are_404(
    client: FlaskClient, app: Flask, published: Release
) -> None:
    assert_error(fetch(client, "/v1/blobs/" + "0" * 64), 404, "unknown_blob")
    with app.app_context():
        from server.routes import current_registry

        orphan = current_registry().blobs.put_bytes(b"uploaded, never released")
    assert_error(fetch(client, f"/v1/blobs/{orphan}"), 404, "unknown_blob")


def test_channel_errors(client: FlaskClient, published: Release) -> None:
    assert_error(fetch(client, "/v1/channels/beta/manifest.json"), 404, "unknown_channel")
    assert_error(fetch(client, "/v1/channels/beta/manifest.sig"), 404, "unknown_channel")
    assert_error(fetch(client, "/v1/channels/Bad_Name/manifest.json"), 400, "invalid_channel")


def test_flask_errors_are_json(client: FlaskClient) -> None:
    assert_error(fetch(client, "/nope"), 404, "not_found")
    not_allowed = fetch(client, "/healthz", method="POST")
    assert_error(not_allowed, 405, "method_not_allowed")
    assert "GET" in not_allowed.headers["Allow"]
    too_large = fetch(client, "/healthz", data=b"x" * 1001)
    assert_error(too_large, 413, "request_entity_too_large")
    assert fetch(client, "/healthz", data=b"x" * 1000).status_code == 200


def test_unhandled_exception_is_opaque_json(config: ServerConfig) -> None:
    app = create_app(config)

    def boom() -> Response:
        raise RuntimeError("secret internals")

    def refuse() -> Response:
        raise ApiError(409, "conflict", "already there")

    app.add_url_rule("/boom", view_func=boom)
    app.add_url_rule("/refuse", view_func=refuse)
    client = app.test_client()
    error = assert_error(fetch(client, "/boom"), 500, "internal_server_error")
    assert "secret" not in error["message"]
    assert assert_error(fetch(client, "/refuse"), 409, "conflict")["message"] == "already there"


def test_cookies_are_stripped(config: ServerConfig, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(config)

    def cookie() -> Response:
        response = Response("hi")
        response.set_cookie("tracker", "1")
        return response

    app.add_url_rule("/cookie", view_func=cookie)
    with caplog.at_level(logging.WARNING, logger="server.app"):
        assert fetch(app.test_client(), "/cookie").status_code == 200
    assert "Set-Cookie" in caplog.text


@pytest.mark.parametrize("log_addresses", [False, True])
def test_client_addresses_logged_only_when_configured(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, log_addresses: bool
) -> None:
    config = ServerConfig(data_dir=tmp_path, log_client_addresses=log_addresses)
    client = create_app(config).test_client()
    with caplog.at_level(logging.DEBUG):
        fetch(client, "/healthz", environ_base={"REMOTE_ADDR": "192.0.2.77"})
        fetch(client, "/nope", environ_base={"REMOTE_ADDR": "192.0.2.77"})
    assert "/healthz" in caplog.text
    assert ("192.0.2.77" in caplog.text) is log_addresses


def test_apps_share_state_through_disk(config: ServerConfig, published: Release) -> None:
    other = create_app(config).test_client()  # as another worker process would
    assert fetch(other, "/v1/channels/stable/manifest.json").headers["ETag"] == (
        f'"{published.manifest_sha256}"'
    )


def test_app_settings(app: Flask) -> None:
    assert app.config["MAX_CONTENT_LENGTH"] == 1000
    assert not app.secret_key


def test_create_app_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETWO_DATA_DIR", str(tmp_path / "env-data"))
    monkeypatch.setenv("FACETWO_MAX_REQUEST_BYTES", "2048")
    app = create_app()
    assert app.config["MAX_CONTENT_LENGTH"] == 2048
    assert (tmp_path / "env-data" / "registry.sqlite3").is_file()


def test_config_from_env(tmp_path: Path) -> None:
    config = ServerConfig.from_env(environ={"FACETWO_DATA_DIR": str(tmp_path)})
    assert config == ServerConfig(data_dir=tmp_path)
    assert config.max_request_bytes == 1_000_000
    assert not config.log_client_addresses
    custom = ServerConfig.from_env(
        prefix="X_",
        environ={
            "X_DATA_DIR": "d",
            "X_MAX_REQUEST_BYTES": "5_000",
            "X_LOG_CLIENT_ADDRESSES": "true",
        },
    )
    assert custom == ServerConfig(Path("d"), 5000, True)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "FACETWO_DATA_DIR"),
        ({"FACETWO_DATA_DIR": "  "}, "FACETWO_DATA_DIR"),
        ({"FACETWO_DATA_DIR": "d", "FACETWO_MAX_REQUEST_BYTES": "lots"}, "MAX_REQUEST_BYTES"),
        ({"FACETWO_DATA_DIR": "d", "FACETWO_MAX_REQUEST_BYTES": "0"}, "max_request_bytes"),
        ({"FACETWO_DATA_DIR": "d", "FACETWO_LOG_CLIENT_ADDRESSES": "maybe"}, "LOG_CLIENT"),
    ],
)
def test_config_from_env_errors(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServerConfig.from_env(environ=environ)


def test_config_validation(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="data_dir"):
        ServerConfig(data_dir="relative")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_request_bytes"):
        ServerConfig(data_dir=tmp_path, max_request_bytes=0)
    with pytest.raises(TypeError, match="max_request_bytes"):
        ServerConfig(data_dir=tmp_path, max_request_bytes=True)
    with pytest.raises(TypeError, match="log_client_addresses"):
        ServerConfig(data_dir=tmp_path, log_client_addresses="yes")  # type: ignore[arg-type]


@pytest.fixture
def tuf_app(tmp_path: Path) -> Flask:
    from server.keys import create_keys, online_keys_dir
    from server.tuf_repo import OnlineKeys

    keys = online_keys_dir(tmp_path / "keys")
    registry = Registry(tmp_path / "tuf-data", keys=OnlineKeys(keys))
    create_keys(tmp_path / "keys", registry)
    (keys / "signing.key").unlink()  # without the bundle key, unsigned test bundles are accepted
    registry.publish_bundle(write_bundle(tmp_path / "tv1", 1), channel="beta")
    return create_app(ServerConfig(data_dir=tmp_path / "tuf-data", keys_dir=keys))


def test_tuf_metadata_routes(tuf_app: Flask) -> None:
    client = tuf_app.test_client()
    timestamp = fetch(client, "/v1/metadata/timestamp.json")
    assert timestamp.status_code == 200
    assert timestamp.mimetype == "application/json"
    assert timestamp.headers["Cache-Control"] == "no-cache"
    etag = timestamp.headers["ETag"]
    assert etag == '"' + hashlib.sha256(timestamp.data).hexdigest() + '"'
    assert json.loads(timestamp.data)["signed"]["version"] == 2
    again = fetch(client, "/v1/metadata/timestamp.json", headers={"If-None-Match": etag})
    assert (again.status_code, again.data, again.headers["ETag"]) == (304, b"", etag)
    for name in ("root.json", "1.root.json", "2.snapshot.json", "2.targets.json", "1.targets.json"):
        response = fetch(client, f"/v1/metadata/{name}")
        assert response.status_code == 200, name
        if name[0].isdigit():
            assert response.cache_control.immutable and response.cache_control.public
    targets = json.loads(fetch(client, "/v1/metadata/2.targets.json").data)["signed"]["targets"]
    entry = targets["beta/model.onnx"]
    blob = fetch(client, f"/v1/targets/beta/{entry['hashes']['sha256']}.model.onnx")
    assert blob.data == FILES["model.onnx"]
    assert blob.cache_control.immutable
    for name in ("2.root.json", "3.targets.json", "0.root.json", "timestamp", "1.timestamp.json"):
        assert_error(fetch(client, f"/v1/metadata/{name}"), 404, "unknown_metadata")
    assert_error(fetch(client, "/v1/targets/beta/model.onnx"), 400, "invalid_target")
    assert_error(fetch(client, "/v1/targets/Bad/" + "0" * 64 + ".x"), 400, "invalid_channel")
    assert_error(fetch(client, "/v1/targets/beta/" + "0" * 64 + ".x"), 404, "unknown_blob")


def test_metadata_before_keys_create_is_404(client: FlaskClient) -> None:
    assert_error(fetch(client, "/v1/metadata/timestamp.json"), 404, "unknown_metadata")
    assert_error(fetch(client, "/v1/metadata/1.root.json"), 404, "unknown_metadata")


def test_a_relative_data_dir_serves_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review finding (issue 3): `facetwo serve --data-dir registry/` answered 500 for blobs,
    because Flask resolves a relative file path against its package, not the working dir."""
    monkeypatch.chdir(tmp_path)
    config = ServerConfig(data_dir=Path("registry"), max_request_bytes=1000)
    client = create_app(config).test_client()
    published = Registry(Path("registry")).publish_bundle(write_bundle(tmp_path / "v1", 1))
    for name, (digest, _size) in published.files.items():
        blob = fetch(client, f"/v1/blobs/{digest}")
        assert blob.status_code == 200
        assert blob.data == FILES[name]
