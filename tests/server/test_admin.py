"""The admin API: every route authenticated, publish/promote/rollback, datasets, jobs, OpenAPI."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from model_export.signing import load_private_key
from server.admin import JOBS_EXTENSION
from server.app import create_app
from server.auth import hash_token, load_token_hashes, token_matches
from server.config import ServerConfig
from server.jobs import JobRunner
from server.keys import create_keys, online_keys_dir
from server.registry import Registry
from server.sample_store import generate_sample_store
from server.tuf_repo import OnlineKeys
from tests.conftest import FIXED_NOW, write_tiny_bundle

TOKEN = "t" * 40
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PUBLIC_ENDPOINTS = {
    "public.healthz",
    "public.metadata",
    "public.target",
    "public.channel_manifest",
    "public.channel_signature",
    "public.blob",
    "openapi",
}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def keys_dir(tmp_path: Path, data_dir: Path) -> Path:
    keys = tmp_path / "keys"
    create_keys(keys, Registry(data_dir, keys=OnlineKeys(online_keys_dir(keys))), now=FIXED_NOW)
    return keys


@pytest.fixture
def app(data_dir: Path, keys_dir: Path) -> Flask:
    config = ServerConfig(
        data_dir=data_dir,
        keys_dir=online_keys_dir(keys_dir),
        admin_token_sha256=frozenset({hash_token(TOKEN)}),
        max_request_bytes=10_000,
        max_upload_bytes=1_000_000,
    )
    return create_app(config, clock=lambda: FIXED_NOW)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def call(client: FlaskClient, method: str, url: str, **kwargs: Any) -> TestResponse:
    response = client.open(url, method=method, **kwargs)
    response.get_data()
    response.close()
    assert "Set-Cookie" not in response.headers
    return response


def error_code(response: TestResponse) -> str:
    body = response.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}
    assert body["error"]["message"]
    return str(body["error"]["code"])


def _sample_url(rule: str) -> str:
    return re.sub(r"<(?:int:)?([a-z_]+)>", lambda m: "1" if "int:" in m[0] else "stable", rule)


def test_every_non_public_route_requires_a_valid_token(app: Flask, client: FlaskClient) -> None:
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        assert rule.rule.startswith("/v1/admin/"), f"{rule.rule} is neither public nor admin"
        for method in sorted((rule.methods or set()) - {"HEAD"}):
            for headers in ({}, {"Authorization": "Bearer " + "x" * 40}, {"Authorization": TOKEN}):
                response = call(client, method, _sample_url(rule.rule), headers=headers)
                assert response.status_code == 401, (rule.rule, method, headers)
                assert error_code(response) == "unauthorized"
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                checked += 1
    assert checked >= 3 * 13


def test_without_configured_tokens_admin_refuses_everyone(data_dir: Path) -> None:
    client = create_app(ServerConfig(data_dir=data_dir)).test_client()
    assert call(client, "GET", "/v1/admin/channels", headers=AUTH).status_code == 401


def test_token_hashing_and_loading(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 32"):
        hash_token("short")
    file = tmp_path / "tokens"
    file.write_text(f"# admins\n{'a' * 32}\n\n{'b' * 33}\n")
    hashes = load_token_hashes(
        {"FACETWO_ADMIN_TOKEN": f"{'c' * 32}, {'d' * 32}", "FACETWO_ADMIN_TOKEN_FILE": str(file)}
    )
    assert hashes == {hash_token(t * n) for t, n in (("a", 32), ("b", 33), ("c", 32), ("d", 32))}
    assert token_matches("b" * 33, hashes)
    assert not token_matches("b" * 32, hashes)
    file.write_text("too-short\n")
    with pytest.raises(ValueError, match=r"tokens:1: admin token: must have at least 32"):
        load_token_hashes({"FACETWO_ADMIN_TOKEN_FILE": str(file)})
    config = ServerConfig.from_env(
        environ={"FACETWO_DATA_DIR": "d", "FACETWO_ADMIN_TOKEN": "e" * 32}
    )
    assert config.admin_token_sha256 == {hash_token("e" * 32)}
    assert "e" * 32 not in repr(config)


def _upload_bundle(client: FlaskClient, bundle: Path) -> dict[str, str]:
    digests = {}
    for path in sorted(bundle.iterdir()):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        response = call(client, "PUT", f"/v1/admin/blobs/{digest}", data=data, headers=AUTH)
        assert response.status_code == 201
        assert response.get_json() == {"sha256": digest, "size": len(data)}
        digests[path.name] = digest
    return digests


def _release(client: FlaskClient, channel: str, digests: dict[str, str]) -> TestResponse:
    body = {
        "manifest_sha256": digests["manifest.json"],
        "signature_sha256": digests["manifest.sig"],
    }
    return call(client, "POST", f"/v1/admin/channels/{channel}/releases", json=body, headers=AUTH)


def test_publish_promote_rollback_and_list(
    client: FlaskClient, keys_dir: Path, tmp_path: Path
) -> None:
    key = load_private_key(online_keys_dir(keys_dir) / "signing.key")
    for version, channel in ((1, "stable"), (2, "beta")):
        digests = _upload_bundle(
            client, write_tiny_bundle(tmp_path / f"b{version}", key, model_version=version)
        )
        response = _release(client, channel, digests)
        assert response.status_code == 201
        assert response.get_json()["release"]["model_version"] == version
    same = _release(client, "beta", digests)
    assert (same.status_code, error_code(same)) == (409, "conflict")
    promoted = call(
        client, "POST", "/v1/admin/channels/stable/promote", json={"from": "beta"}, headers=AUTH
    )
    assert promoted.status_code == 201
    assert promoted.get_json()["release"]["model_version"] == 2
    rolled = call(
        client, "POST", "/v1/admin/channels/stable/rollback", json={"to_version": 1}, headers=AUTH
    )
    assert rolled.get_json()["release"]["model_version"] == 3
    listed = call(client, "GET", "/v1/admin/channels/stable/releases", headers=AUTH).get_json()
    assert [r["model_version"] for r in listed["releases"]] == [3, 2, 1]
    channels = call(client, "GET", "/v1/admin/channels", headers=AUTH).get_json()
    assert channels == {
        "channels": [
            {"channel": "beta", "latest": 2, "releases": 1},
            {"channel": "stable", "latest": 3, "releases": 3},
        ]
    }
    # The public side serves the new state at once.
    timestamp = call(client, "GET", "/v1/metadata/timestamp.json")
    assert json.loads(timestamp.data)["signed"]["version"] == 5


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "code"),
    [
        (
            "POST",
            "/v1/admin/channels/stable/releases",
            {"manifest_sha256": "x"},
            400,
            "invalid_argument",
        ),
        (
            "POST",
            "/v1/admin/channels/stable/releases",
            {"manifest_sha256": "0" * 64, "signature_sha256": "1" * 64},
            404,
            "not_found",
        ),
        ("POST", "/v1/admin/channels/Bad/releases", {}, 400, "invalid_channel"),
        ("POST", "/v1/admin/channels/stable/promote", {"from": 3}, 400, "invalid_argument"),
        ("POST", "/v1/admin/channels/stable/promote", {"from": "beta"}, 404, "not_found"),
        (
            "POST",
            "/v1/admin/channels/stable/rollback",
            {"to_version": True},
            400,
            "invalid_argument",
        ),
        ("POST", "/v1/admin/channels/stable/rollback", {}, 400, "invalid_argument"),
        ("POST", "/v1/admin/jobs", {"interactions": 99}, 404, "not_found"),
        ("POST", "/v1/admin/jobs", {"interactions": "1"}, 400, "invalid_argument"),
        ("GET", "/v1/admin/jobs/99", None, 404, "not_found"),
    ],
)
def test_admin_errors_are_json(
    client: FlaskClient, method: str, url: str, body: object, status: int, code: str
) -> None:
    response = call(client, method, url, json=body, headers=AUTH)
    assert (response.status_code, error_code(response)) == (status, code)


def test_blob_upload_checks_digest_and_size(client: FlaskClient, app: Flask) -> None:
    wrong = call(client, "PUT", "/v1/admin/blobs/" + "0" * 64, data=b"abc", headers=AUTH)
    assert (wrong.status_code, error_code(wrong)) == (422, "rejected")
    big = b"x" * 1_000_001
    digest = hashlib.sha256(big).hexdigest()
    too_big = call(client, "PUT", f"/v1/admin/blobs/{digest}", data=big, headers=AUTH)
    assert (too_big.status_code, error_code(too_big)) == (413, "request_entity_too_large")
    with app.app_context():
        from server.routes import current_registry

        assert not current_registry().blobs.has(digest)
    # Bodies of other admin routes keep the small limit.
    large_json = call(
        client, "POST", "/v1/admin/jobs", data=b"{" + b" " * 20_000 + b"}", headers=AUTH
    )
    assert large_json.status_code == 413


def test_dataset_upload_validates_and_stores_nothing_on_a_bad_row(
    client: FlaskClient, app: Flask
) -> None:
    bad = b"user_id,item_id,timestamp\nu1,i1,2025-01-01\nu2,i2,yesterday\n"
    response = call(
        client, "POST", "/v1/admin/datasets?kind=interactions&name=logs.csv", data=bad, headers=AUTH
    )
    assert (response.status_code, error_code(response)) == (422, "invalid_data")
    message = response.get_json()["error"]["message"]
    assert message.startswith("logs.csv:3: field 'timestamp'"), message
    assert "tmp" not in message
    with app.app_context():
        from server.routes import current_registry

        assert not current_registry().blobs.has(hashlib.sha256(bad).hexdigest())
    assert call(client, "GET", "/v1/admin/datasets", headers=AUTH).get_json() == {"datasets": []}
    for query, code in (("kind=orders", "invalid_argument"), ("name=../x.csv", "invalid_argument")):
        response = call(client, "POST", f"/v1/admin/datasets?{query}", data=bad, headers=AUTH)
        assert (response.status_code, error_code(response)) == (400, code)


def test_train_and_export_job_publishes_to_beta(
    client: FlaskClient, app: Flask, tmp_path: Path
) -> None:
    shop = generate_sample_store(tmp_path / "shop", n_items=120, n_shoppers=300, seed=3)
    ids = {}
    for kind, path in (("interactions", shop.interactions), ("catalog", shop.catalog)):
        data = path.read_bytes()
        response = call(
            client,
            "POST",
            f"/v1/admin/datasets?kind={kind}&name={path.name}",
            data=data,
            headers={**AUTH},
            content_type="text/csv",
        )
        assert response.status_code == 201, response.get_json()
        dataset = response.get_json()["dataset"]
        assert dataset["sha256"] == hashlib.sha256(data).hexdigest()
        ids[kind] = dataset["id"]
    started = call(
        client,
        "POST",
        "/v1/admin/jobs",
        json={"interactions": ids["interactions"], "catalog": ids["catalog"], "channel": "beta"},
        headers=AUTH,
    )
    assert started.status_code == 202
    job_id = started.get_json()["job"]["id"]
    runner: JobRunner = app.extensions[JOBS_EXTENSION]
    job = runner.wait(job_id, timeout_seconds=120)
    assert job.status == "succeeded", job.error
    assert job.model_version is not None and job.model_version > 20_000_000_000_000
    assert job.log[-1] == f"published v{job.model_version} on beta"
    status = call(client, "GET", f"/v1/admin/jobs/{job_id}", headers=AUTH).get_json()["job"]
    assert status["status"] == "succeeded" and status["log"] == list(job.log)
    releases = call(client, "GET", "/v1/admin/channels/beta/releases", headers=AUTH).get_json()
    assert [r["model_version"] for r in releases["releases"]] == [job.model_version]


def test_job_without_keys_fails_with_its_reason(data_dir: Path, tmp_path: Path) -> None:
    registry = Registry(data_dir)
    from server.datasets import save_dataset

    with (Path(__file__).parent.parent / "data" / "interactions_small.csv").open("rb") as stream:
        dataset = save_dataset(
            registry, stream, kind="interactions", name="i.csv", max_bytes=10_000
        )
    runner = JobRunner(registry)
    try:
        job = runner.wait(runner.submit(interactions_id=dataset.id).id, timeout_seconds=60)
    finally:
        runner.shutdown()
    assert (job.status, job.error) == (
        "failed",
        "no keys directory configured: cannot sign the bundle",
    )
    with pytest.raises(ValueError, match="channel"):
        runner.submit(interactions_id=dataset.id, channel="Bad")


def test_openapi_documents_every_route(app: Flask, client: FlaskClient) -> None:
    response = call(client, "GET", "/openapi.json")
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:int:)?([a-z_]+)>", r"{\1}", rule.rule)
        assert path in paths, path
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            operation = paths[path][method.lower()]
            assert operation["security"] == ([{"bearer": []}] if "/admin/" in path else [])
    assert len(paths) == len(
        {re.sub(r"<(?:int:)?([a-z_]+)>", r"{\1}", r.rule) for r in app.url_map.iter_rules()}
    )
