"""Body limits inside waitress: refused from the headers, before any body byte is read.

Each socket test sends only the request head (a ``Content-Length`` far larger than anything it
will send) and reads the answer: an answer that arrives proves the server decided without
waiting for, or storing, the body.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waitress.adjustments import Adjustments

from server._body_gate import BodyGate, gated_parser_class
from server.app import create_app
from server.auth import hash_token
from server.config import ServerConfig
from server.wsgi import ServiceHandle, start_service

TOKEN = "g" * 40
REQUEST_LIMIT = 1_000
UPLOAD_LIMIT = 50_000
APP_ONLY_HEADER = "x-content-type-options"  # added by the app to its answers, never by the gate


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceHandle]:
    config = ServerConfig(
        data_dir=tmp_path / "data",
        max_request_bytes=REQUEST_LIMIT,
        max_upload_bytes=UPLOAD_LIMIT,
        admin_token_sha256=frozenset({hash_token(TOKEN)}),
    )
    with start_service(create_app(config), threads=2) as handle:
        yield handle


def exchange(
    service: ServiceHandle, head: str, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """Send a request head (and ``body``), read the whole answer until the server closes."""
    with socket.create_connection((service.host, service.port), timeout=5) as sock:
        sock.sendall(head.encode("latin-1") + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    header_block, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *lines = header_block.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, payload


def head(method: str, path: str, length: int, *extra: str) -> str:
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", f"Content-Length: {length}"]
    lines += [*extra, "Connection: close"]
    return "\r\n".join(lines) + "\r\n\r\n"


def blob_path(data: bytes) -> str:
    return f"/v1/admin/blobs/{hashlib.sha256(data).hexdigest()}"


def test_anonymous_upload_is_refused_before_its_body(service: ServiceHandle) -> None:
    status, headers, body = exchange(service, head("PUT", blob_path(b"x"), 500_000_000))
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    assert json.loads(body)["error"]["code"] == "unauthorized"


def test_no_100_continue_invites_a_refused_body(service: ServiceHandle) -> None:
    request = head("PUT", blob_path(b"x"), 500_000_000, "Expect: 100-continue")
    status, _, body = exchange(service, request)
    assert status == 401  # the first answer: no "100 Continue" before it
    assert json.loads(body)["error"]["code"] == "unauthorized"


def test_wrong_token_upload_is_refused_before_its_body(service: ServiceHandle) -> None:
    auth = "Authorization: Bearer " + "h" * 40
    status, _, body = exchange(service, head("POST", "/v1/admin/datasets", 40_000, auth))
    assert status == 401
    assert json.loads(body)["error"]["code"] == "unauthorized"


def test_public_route_body_over_the_request_limit_is_refused_unread(
    service: ServiceHandle,
) -> None:
    status, _, body = exchange(service, head("POST", "/healthz", REQUEST_LIMIT + 1))
    assert status == 413
    error = json.loads(body)["error"]
    assert error["code"] == "request_entity_too_large"
    assert f"limited to {REQUEST_LIMIT} bytes" in error["message"]


def test_authenticated_upload_over_the_upload_limit_is_refused_unread(
    service: ServiceHandle,
) -> None:
    auth = f"Authorization: Bearer {TOKEN}"
    status, _, body = exchange(service, head("PUT", blob_path(b"x"), UPLOAD_LIMIT + 1, auth))
    assert status == 413
    assert f"limited to {UPLOAD_LIMIT} bytes" in json.loads(body)["error"]["message"]


def test_authenticated_upload_over_the_request_limit_is_stored(service: ServiceHandle) -> None:
    data = bytes(range(256)) * 40  # 10,240 bytes: over the request limit, under the upload one
    auth = f"Authorization: Bearer {TOKEN}"
    status, _, body = exchange(service, head("PUT", blob_path(data), len(data), auth), data)
    assert status == 201, body
    assert json.loads(body)["sha256"] == hashlib.sha256(data).hexdigest()


def test_chunked_anonymous_upload_is_cut_off_at_the_request_limit(
    service: ServiceHandle,
) -> None:
    lines = [f"PUT {blob_path(b'x')} HTTP/1.1", "Host: localhost", "Transfer-Encoding: chunked"]
    chunk = b"%x\r\n%s\r\n" % (600, b"y" * 600)
    request = ("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode() + chunk * 2
    status, _, body = exchange(service, request.decode("latin-1"))
    assert status == 401
    assert json.loads(body)["error"]["code"] == "unauthorized"


def test_small_anonymous_bodies_still_reach_the_app(service: ServiceHandle) -> None:
    status, headers, body = exchange(service, head("PUT", blob_path(b"x"), 1), b"x")
    assert status == 401  # Flask's own auth check answers, with the same JSON shape
    assert json.loads(body)["error"]["code"] == "unauthorized"
    assert headers[APP_ONLY_HEADER] == "nosniff"  # the app answered, not the gate


def chunked(method: str, path: str, body: bytes, size: int, *extra: str) -> str:
    """A chunked request: its head, then ``body`` in chunks of ``size`` bytes (as latin-1)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", "Transfer-Encoding: chunked"]
    request = "\r\n".join([*lines, *extra, "Connection: close"]).encode() + b"\r\n\r\n"
    for start in range(0, len(body), size):
        part = body[start : start + size]
        request += b"%x\r\n%s\r\n" % (len(part), part)
    return (request + b"0\r\n\r\n").decode("latin-1")


def test_a_chunked_body_is_limited_by_its_decoded_size_not_its_framing(
    service: ServiceHandle,
) -> None:
    at_limit = b"z" * REQUEST_LIMIT  # + 10 chunks of framing: over the limit on the wire
    status, headers, _ = exchange(service, chunked("PUT", blob_path(at_limit), at_limit, 100))
    assert (status, headers.get(APP_ONLY_HEADER)) == (401, "nosniff")  # reached the app
    over = at_limit + b"z"
    status, headers, body = exchange(service, chunked("PUT", blob_path(over), over, 100))
    assert (status, headers.get(APP_ONLY_HEADER)) == (401, None)  # the gate's answer
    assert json.loads(body)["error"]["code"] == "unauthorized"


def test_a_chunked_upload_framed_past_the_upload_limit_is_stored(service: ServiceHandle) -> None:
    data = (bytes(range(250)) * (UPLOAD_LIMIT // 250 + 1))[:UPLOAD_LIMIT]  # exactly the limit
    auth = f"Authorization: Bearer {TOKEN}"  # 500 chunks of 100 add 3,000 bytes on the wire
    status, _, body = exchange(service, chunked("PUT", blob_path(data), data, 100, auth))
    assert status == 201, body
    assert json.loads(body)["size"] == UPLOAD_LIMIT
    length = head("PUT", blob_path(data), len(data), auth)
    status, _, body = exchange(service, length, data)  # with a Content-Length too
    assert status == 201, body
    over = data + b"!"
    status, _, body = exchange(service, chunked("PUT", blob_path(over), over, 5_000, auth))
    assert status == 413
    assert f"limited to {UPLOAD_LIMIT} bytes" in json.loads(body)["error"]["message"]


def parse(gate: BodyGate, request: str) -> Any:
    """Feed a request to the gated parser in 8 KiB reads, as waitress does; the parser."""
    adjustments = Adjustments(max_request_body_size=gate.largest + 1)  # as server.wsgi sets it
    parser = gated_parser_class(gate)(adjustments)
    data = request.encode("latin-1")
    while data and not parser.completed:
        consumed = parser.received(data[:8192])
        assert consumed > 0
        data = data[consumed:]
    return parser


def answer(parser: Any) -> tuple[int | None, bytes]:
    """The parser's error status (None: none) and the body it stored; closes its buffer."""
    status = None if parser.error is None else parser.error.code
    body = parser.get_body_stream().read()
    parser.close()
    return status, body


@pytest.mark.parametrize(
    ("authorization", "size", "expected"),
    [
        (f"Authorization: Bearer {TOKEN}", 100, None),  # 2 x 100 + 5 bytes of framing
        (f"Authorization: Bearer {TOKEN}", 101, 413),
        ("X-None: 1", 10, None),  # 60 bytes on the wire for 10
        ("X-None: 1", 11, 401),
    ],
)
def test_a_chunked_body_is_limited_to_its_decoded_size_exactly(
    authorization: str, size: int, expected: int | None
) -> None:
    request = chunked("PUT", "/up", b"q" * size, 1, authorization)
    parser = parse(gate(frozenset({hash_token(TOKEN)})), request)
    assert parser.completed
    status, body = answer(parser)
    assert status == expected
    if expected is None:
        assert body == b"q" * size


@pytest.mark.parametrize(("zeros", "expected"), [(2 * 10 + 4_096, None), (2 * 10 + 4_097, 413)])
def test_chunk_framing_is_limited_on_the_wire(zeros: int, expected: int | None) -> None:
    # a chunk-size line that never ends decodes to nothing, but waitress holds it in memory
    start = chunked("POST", "/other", b"", 1).removesuffix("0\r\n\r\n")
    parser = parse(gate(frozenset()), start + "0" * zeros)
    assert parser.completed == (expected is not None)
    assert answer(parser)[0] == expected


def gate(hashes: frozenset[str]) -> BodyGate:
    return BodyGate(
        max_request_bytes=10,
        max_upload_bytes=100,
        token_hashes=hashes,
        is_upload=lambda method, path: (method, path) == ("PUT", "/up"),
    )


@pytest.mark.parametrize(
    ("method", "path", "authorization", "expected"),
    [
        ("PUT", "/up", f"Bearer {TOKEN}", (100, False)),
        ("PUT", "/up", f"bearer  {TOKEN} ", (100, False)),
        ("PUT", "/up", "", (10, True)),
        ("PUT", "/up", f"Basic {TOKEN}", (10, True)),
        ("PUT", "/up", "Bearer " + "z" * 40, (10, True)),
        ("POST", "/up", f"Bearer {TOKEN}", (10, False)),
        ("GET", "/other", f"Bearer {TOKEN}", (10, False)),
    ],
)
def test_gate_limits(
    method: str, path: str, authorization: str, expected: tuple[int, bool]
) -> None:
    assert gate(frozenset({hash_token(TOKEN)})).limit(method, path, authorization) == expected


def test_gate_without_configured_tokens_lets_no_upload_grow() -> None:
    assert gate(frozenset()).limit("PUT", "/up", f"Bearer {TOKEN}") == (10, True)
    assert gate(frozenset()).refusal("PUT", "/up", "", 10) is None
    refusal = gate(frozenset()).refusal("PUT", "/up", "", 11)
    assert refusal is not None
    assert refusal.status == 401
