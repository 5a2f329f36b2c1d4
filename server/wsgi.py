"""Run the registry service under waitress, a production WSGI server.

``start_service`` runs it in a background thread and returns a :class:`ServiceHandle` (the demo
and the tests use this); ``serve_forever`` blocks, for ``facetwo serve``. Both bind to loopback
unless ``allow_public=True``: exposing the service is a deliberate deployment decision, usually
behind a TLS-terminating proxy.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from types import TracebackType
from typing import Any

import waitress
from flask import Flask
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.task import WSGITask

from server._body_gate import BodyGate, gated_parser_class

__all__ = ["ServiceHandle", "serve_forever", "start_service"]

logger = logging.getLogger(__name__)

_STOP_TIMEOUT_SECONDS = 5.0


class ServiceHandle:
    """A waitress server running in a daemon thread; stop it with :meth:`stop` or ``with``."""

    def __init__(self, server: Any, thread: threading.Thread, host: str, port: int) -> None:
        """Wrap a started server (use :func:`start_service` rather than this).

        Args:
            server: The waitress server whose ``run()`` loop ``thread`` executes.
            thread: The thread running the server.
            host: The address the server is bound to.
            port: The port the server is bound to.
        """
        self._server = server
        self._thread = thread
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def host(self) -> str:
        """The bound address."""
        return self._host

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the service, such as ``http://127.0.0.1:54321``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    def stop(self, timeout_seconds: float = _STOP_TIMEOUT_SECONDS) -> None:
        """Stop accepting, finish in-flight requests, close every socket and join the thread.

        Safe to call more than once.

        Args:
            timeout_seconds: How long to wait for in-flight requests and the server thread.

        Raises:
            RuntimeError: The server thread did not finish in time.
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        server = self._server
        # Let running requests finish (the event loop still flushes their output), then ask
        # the loop thread itself to close every socket: the loop ends when its map is empty.
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout_seconds)
        if self._thread.is_alive():
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
            self._thread.join(timeout_seconds)
        if self._thread.is_alive():
            raise RuntimeError(f"service on {self.url} did not stop within {timeout_seconds}s")
        wasyncore.close_all(server._map)  # no-op unless the loop died early
        logger.info("service on %s stopped", self.url)

    def __enter__(self) -> ServiceHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_service(
    app: Flask,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    threads: int = 8,
    allow_public: bool = False,
) -> ServiceHandle:
    """Start ``app`` under waitress in a background thread.

    Args:
        app: The WSGI app (from :func:`server.app.create_app`); its ``MAX_CONTENT_LENGTH``
            also caps request bodies at the WSGI server.
        host: Address to bind; must be loopback unless ``allow_public``.
        port: Port to bind; 0 picks a free one (read it from the handle).
        threads: Worker threads.
        allow_public: Allow a non-loopback ``host``.

    Returns:
        A handle with the URL and port; stop it when done.

    Raises:
        ValueError: ``host`` is not loopback and ``allow_public`` is false, or ``port`` or
            ``threads`` is out of range.
        OSError: The address cannot be bound.
    """
    server = _create_server(app, host=host, port=port, threads=threads, allow_public=allow_public)
    bound_host, bound_port = server.socket.getsockname()[:2]
    thread = threading.Thread(target=server.run, name=f"facetwo-waitress-{bound_port}")
    thread.daemon = True
    thread.start()
    handle = ServiceHandle(server, thread, bound_host, bound_port)
    logger.info("service listening on %s (%d threads)", handle.url, threads)
    return handle


def serve_forever(
    app: Flask,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    threads: int = 8,
    allow_public: bool = False,
) -> None:
    """Serve ``app`` under waitress until interrupted (for ``facetwo serve``).

    Args:
        app: The WSGI app.
        host: Address to bind; must be loopback unless ``allow_public``.
        port: Port to bind.
        threads: Worker threads.
        allow_public: Allow a non-loopback ``host``.

    Raises:
        ValueError: ``host`` is not loopback and ``allow_public`` is false, or ``port`` or
            ``threads`` is out of range.
        OSError: The address cannot be bound.
    """
    server = _create_server(app, host=host, port=port, threads=threads, allow_public=allow_public)
    bound_host, bound_port = server.socket.getsockname()[:2]
    logger.info("serving on %s:%d (%d threads); Ctrl-C stops", bound_host, bound_port, threads)
    try:
        server.run()  # returns after KeyboardInterrupt / SystemExit, workers shut down
    finally:
        server.task_dispatcher.shutdown()
        wasyncore.close_all(server._map)
        logger.info("service stopped")


def _create_server(app: Flask, *, host: str, port: int, threads: int, allow_public: bool) -> Any:
    _check_host(host, allow_public=allow_public)
    if not 0 <= port <= 65535:
        raise ValueError(f"port: must be between 0 and 65535, got {port}")
    if not 1 <= threads <= 1024:
        raise ValueError(f"threads: must be between 1 and 1024, got {threads}")
    # The gate refuses a body from the request line and headers, before any of it is read:
    # only an upload carrying a valid admin token may exceed the small request limit.
    # waitress's own max_request_body_size is a backstop above the largest limit.
    gate = BodyGate.for_app(app)
    server = waitress.create_server(
        app,
        host="127.0.0.1" if host == "localhost" else host,
        port=port,
        threads=threads,
        max_request_body_size=gate.largest + 1,
        ident="facetwo",
    )
    # This server only; waitress itself is unchanged.
    server.channel_class = type(
        "_FacetwoChannel", (_KeepAliveChannel,), {"parser_class": gated_parser_class(gate)}
    )
    return server


class _KeepAliveTask(WSGITask):  # type: ignore[misc]
    """waitress 3 closes an HTTP/1.1 connection after every 304, because werkzeug (rightly)
    sends it without a Content-Length. A 304 never has a body, so the connection can stay open:
    devices and caches revalidating ``timestamp.json`` would otherwise pay a new TCP (and TLS)
    handshake per check. Every other reason to close (the client asked, an error) still holds.
    """

    def set_close_on_finish(self) -> None:
        keep_open = (
            self.status.startswith("304")
            and self.version == "1.1"
            and not self.wrote_header
            and self.request.headers.get("CONNECTION", "").lower() != "close"
        )
        if not keep_open:
            super().set_close_on_finish()


class _KeepAliveChannel(HTTPChannel):  # type: ignore[misc]
    task_class = _KeepAliveTask


def _check_host(host: str, *, allow_public: bool) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise ValueError(
            f"host {host!r}: expected an IP address (such as 127.0.0.1 or ::1) or 'localhost'"
        ) from None
    if not loopback and not allow_public:
        raise ValueError(
            f"host {host!r} is not a loopback address; the service binds to loopback by "
            "default so it is not exposed by accident. Pass allow_public=True (for example "
            "behind a TLS-terminating proxy) to listen on other interfaces."
        )
