"""Background train-and-export jobs (load -> train -> export -> sign -> publish, off-request).

A job names an uploaded interactions dataset (and optionally a catalog) and a channel. It runs
:func:`server.pipeline.build_bundle` in a worker thread, signs with the service's bundle key
and, when a channel is given, publishes the bundle there. Status and log lines live in SQLite,
so any worker process can answer for any job; a job left running by a process that died is
marked failed when a runner starts on the same host.

:class:`MetadataRefresher` is the other background duty of a running service: it re-signs the
short-lived TUF timestamp (and whatever else is due) so devices never see expired metadata.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from server.datasets import get_dataset
from server.db import transaction
from server.errors import NotFoundError, ServerError
from server.registry import Registry, is_valid_channel

__all__ = ["Job", "JobRunner", "MetadataRefresher"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_COLUMNS = (
    "id, status, interactions_id, catalog_id, channel, model_version, created_at, "
    "finished_at, error"
)


@dataclass(frozen=True, slots=True)
class Job:
    """One train-and-export job.

    Attributes:
        id: Its number.
        status: ``queued``, ``running``, ``succeeded`` or ``failed``.
        interactions_id: The interactions dataset.
        catalog_id: The catalog dataset, if any.
        channel: Where the bundle is published on success (None: build only).
        model_version: The version built (once known).
        created_at: When it was submitted (UTC).
        finished_at: When it ended (UTC), if it has.
        error: Why it failed, if it did.
        log: Progress lines, oldest first.
    """

    id: int
    status: str
    interactions_id: int
    catalog_id: int | None
    channel: str | None
    model_version: int | None
    created_at: datetime
    finished_at: datetime | None
    error: str | None
    log: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The JSON form used by the admin API."""
        return {
            "id": self.id,
            "status": self.status,
            "interactions": self.interactions_id,
            "catalog": self.catalog_id,
            "channel": self.channel,
            "model_version": self.model_version,
            "created_at": self.created_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "error": self.error,
            "log": list(self.log),
        }


class JobRunner:
    """Runs jobs in a small thread pool; job state is in the registry's database."""

    def __init__(
        self, registry: Registry, *, max_workers: int = 1, clock: Clock | None = None
    ) -> None:
        """Args:
        registry: The registry (its keys sign the bundles).
        max_workers: Jobs that may train at once.
        clock: Returns the current time (tests pass a fixed one).
        """
        if max_workers < 1:
            raise ValueError(f"max_workers: must be >= 1, got {max_workers}")
        self._registry = registry
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._owner = f"{socket.gethostname()}:{os.getpid()}"
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="facetwo-job")
        self._futures: dict[int, Future[None]] = {}
        self._lock = threading.Lock()
        self._fail_orphans()

    def submit(
        self, *, interactions_id: int, catalog_id: int | None = None, channel: str | None = None
    ) -> Job:
        """Queue a job.

        Raises:
            ValueError: ``channel`` is not a valid name.
            NotFoundError: A dataset does not exist or is of the wrong kind.
        """
        if channel is not None and not is_valid_channel(channel):
            raise ValueError(f"channel: expected [a-z][a-z0-9-]{{0,31}}, got {channel!r}")
        for dataset_id, kind in ((interactions_id, "interactions"), (catalog_id, "catalog")):
            if dataset_id is not None and get_dataset(self._registry, dataset_id).kind != kind:
                raise NotFoundError(f"dataset #{dataset_id} is not a {kind} dataset")
        with self._registry.database.connect() as conn, transaction(conn):
            cursor = conn.execute(
                "INSERT INTO jobs (status, interactions_id, catalog_id, channel, owner, "
                "created_at) VALUES ('queued', ?, ?, ?, ?, ?)",
                (interactions_id, catalog_id, channel, self._owner, self._now()),
            )
            job_id = int(cursor.lastrowid or 0)
        with self._lock:
            self._futures[job_id] = self._executor.submit(self._run, job_id)
        logger.info("queued job #%d", job_id)
        return self.get(job_id)

    def get(self, job_id: int) -> Job:
        """Return a job with its log.

        Raises:
            NotFoundError: No job has this id.
        """
        database = self._registry.database
        rows = database.read(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))  # noqa: S608 - constant columns
        if not rows:
            raise NotFoundError(f"no job #{job_id}")
        log = database.read("SELECT message FROM job_log WHERE job_id = ? ORDER BY line", (job_id,))
        id_, status, interactions, catalog, channel, version, created, finished, error = rows[0]
        return Job(
            id_,
            status,
            interactions,
            catalog,
            channel,
            version,
            datetime.fromisoformat(created),
            None if finished is None else datetime.fromisoformat(finished),
            error,
            tuple(row[0] for row in log),
        )

    def wait(self, job_id: int, timeout_seconds: float) -> Job:
        """Block until a job this runner started has ended, then return it.

        Raises:
            NotFoundError: This runner did not start the job.
            TimeoutError: It is still running after ``timeout_seconds``.
        """
        with self._lock:
            future = self._futures.get(job_id)
        if future is None:
            raise NotFoundError(f"job #{job_id} was not started by this process")
        future.result(timeout=timeout_seconds)
        return self.get(job_id)

    def shutdown(self) -> None:
        """Let running jobs finish and stop the worker threads."""
        self._executor.shutdown(wait=True, cancel_futures=False)

    def _run(self, job_id: int) -> None:
        from server.pipeline import build_bundle, default_model_version

        job = self.get(job_id)
        self._update(job_id, "status = 'running'")
        registry = self._registry
        try:
            interactions = get_dataset(registry, job.interactions_id)
            catalog = None if job.catalog_id is None else get_dataset(registry, job.catalog_id)
            if registry.keys is None:
                raise ServerError("no keys directory configured: cannot sign the bundle")
            key = registry.keys.bundle_key()
            version = max(default_model_version(self._clock()), registry.next_model_version())
            self._update(job_id, "model_version = ?", version)
            scratch = registry.data_dir / "tmp"
            scratch.mkdir(exist_ok=True)
            catalog_path = None if catalog is None else registry.blobs.path_for(catalog.sha256)
            with tempfile.TemporaryDirectory(dir=scratch, prefix=f"job-{job_id}-") as temp:
                report = build_bundle(
                    registry.blobs.path_for(interactions.sha256),
                    Path(temp) / "bundle",
                    signing_keys=[key],
                    catalog_path=catalog_path,
                    model_version=version,
                    progress=lambda message: self._log(job_id, message),
                )
                if job.channel is not None:
                    registry.publish_bundle(
                        report.bundle_dir, channel=job.channel, now=self._clock()
                    )
                    self._log(job_id, f"published v{version} on {job.channel}")
        except Exception as exc:  # a job's failure is recorded, not raised
            logger.warning("job #%d failed: %s", job_id, type(exc).__name__)
            self._update(
                job_id, "status = 'failed', error = ?, finished_at = ?", str(exc), self._now()
            )
            return
        self._update(job_id, "status = 'succeeded', finished_at = ?", self._now())
        logger.info("job #%d succeeded: v%d", job_id, version)

    def _log(self, job_id: int, message: str) -> None:
        with self._registry.database.connect() as conn, transaction(conn):
            conn.execute(
                "INSERT INTO job_log (job_id, line, message) VALUES (?, (SELECT COUNT(*) + 1 "
                "FROM job_log WHERE job_id = ?), ?)",
                (job_id, job_id, message),
            )

    def _update(self, job_id: int, assignments: str, *values: object) -> None:
        with self._registry.database.connect() as conn, transaction(conn):
            conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*values, job_id))  # noqa: S608 - fixed assignments

    def _now(self) -> str:
        return self._clock().astimezone(timezone.utc).isoformat()

    def _fail_orphans(self) -> None:
        """Mark jobs left queued or running by dead processes on this host as failed."""
        host = socket.gethostname()
        rows = self._registry.database.read(
            "SELECT id, owner FROM jobs WHERE status IN ('queued', 'running')"
        )
        for job_id, owner in rows:
            owner_host, _, pid = str(owner).rpartition(":")
            if owner_host == host and pid.isdigit() and not _process_alive(int(pid)):
                self._update(
                    job_id,
                    "status = 'failed', error = ?, finished_at = ?",
                    "interrupted: the process running it stopped",
                    self._now(),
                )


class MetadataRefresher:
    """A daemon thread that calls ``registry.refresh_metadata()`` every ``interval_seconds``."""

    def __init__(self, registry: Registry, *, interval_seconds: float = 300.0) -> None:
        """Args:
        registry: The registry whose metadata is kept fresh.
        interval_seconds: Time between checks.
        """
        if interval_seconds <= 0:
            raise ValueError(f"interval_seconds: must be > 0, got {interval_seconds}")
        self._registry = registry
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="facetwo-refresh", daemon=True)

    def start(self) -> MetadataRefresher:
        """Start the thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                roles = self._registry.refresh_metadata()
                if roles:
                    logger.info("re-signed %s", ", ".join(roles))
            except ServerError as exc:
                logger.error("metadata refresh failed: %s", exc)
            self._stop.wait(self._interval)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
