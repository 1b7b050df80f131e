"""Gauges read from the database, the broker and the key file at each scrape.

What a Prometheus server needs at 3 a.m. is the state now (a life-safety tip nobody has
acknowledged, routing jobs left pending, a queue backing up, a key file the app cannot read),
so these are asked at scrape time rather than counted by processes that may have died.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Connection, func, select
from sqlalchemy.pool import NullPool

from tipline.settings import Settings

log = logging.getLogger(__name__)

BROKER_QUEUES = ("tipline", "tipline.urgent")


class StateCollector:
    """Database, broker and key-file gauges; each source that fails reports itself down."""

    def __init__(self, settings: Settings, bind: Any = None) -> None:
        """``bind``: an engine or an open connection to read through (tests); default, an
        engine without a pool on the settings' database."""
        self.settings = settings
        self._bind: Any = bind

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        if self._bind is None:
            from tipline.db import make_engine

            self._bind = make_engine(self.settings.database_url, poolclass=NullPool)
        if isinstance(self._bind, Connection):
            yield self._bind
        else:
            with self._bind.connect() as conn:
                yield conn

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._database()
        yield from self._queues()
        yield self._key_file()
        yield self._build()

    def _database(self) -> Iterator[GaugeMetricFamily]:
        import tipline.models  # noqa: F401
        from tipline.db import utcnow
        from tipline.routing.models import JobStatus, RoutingJob
        from tipline.tips.models import Severity, Status, Tip

        up = GaugeMetricFamily("tipline_database_up", "1 when the database answered this scrape")
        now = utcnow()
        try:
            with self._connection() as conn:
                open_ls = (Tip.severity >= int(Severity.LIFE_SAFETY),
                           Tip.acknowledged_at.is_(None), Tip.status != Status.CLOSED.value)
                count, oldest = conn.execute(
                    select(func.count(Tip.id), func.min(Tip.created_at)).where(*open_ls)
                ).one()
                late = conn.execute(
                    select(func.count(RoutingJob.id)).where(
                        RoutingJob.status == JobStatus.PENDING.value,
                        RoutingJob.created_at
                        < now - timedelta(seconds=self.settings.sweep_grace_seconds))
                ).scalar_one()
                failed = conn.execute(
                    select(func.count(RoutingJob.id)).where(
                        RoutingJob.status == JobStatus.FAILED.value)
                ).scalar_one()
                day = conn.execute(
                    select(func.count(Tip.id)).where(Tip.created_at >= now - timedelta(days=1))
                ).scalar_one()
        except Exception as exc:  # a scrape reports the database down, never fails
            log.warning("metrics: database unreadable (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        if oldest is not None and oldest.tzinfo is None:
            from datetime import UTC

            oldest = oldest.replace(tzinfo=UTC)
        yield GaugeMetricFamily(
            "tipline_unacknowledged_life_safety_tips",
            "Open life-safety tips nobody has acknowledged", value=count)
        yield GaugeMetricFamily(
            "tipline_oldest_unacknowledged_life_safety_seconds",
            "Age of the oldest unacknowledged life-safety tip (0: none)",
            value=(now - oldest).total_seconds() if oldest is not None else 0)
        yield GaugeMetricFamily(
            "tipline_routing_jobs_late",
            "Routing jobs still pending after the sweep's grace period", value=late)
        yield GaugeMetricFamily(
            "tipline_routing_jobs_failed", "Routing jobs that alerted nobody (all time)",
            value=failed)
        yield GaugeMetricFamily(
            "tipline_tips_last_day", "Tips received in the last 24 hours", value=day)

    def _queues(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("tipline_queue_depth", "Tasks waiting in the broker",
                                  labels=["queue"])
        up = GaugeMetricFamily("tipline_broker_up", "1 when the broker answered this scrape")
        try:
            for name, n in queue_depths(self.settings.broker_url):
                depth.add_metric([name], n)
        except Exception as exc:
            log.warning("metrics: broker unreadable (%s)", type(exc).__name__)
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
        yield depth
        yield up

    def _key_file(self) -> GaugeMetricFamily:
        from tipline.crypto import KeyFileError, load_key_file

        try:
            load_key_file(self.settings.key_file)
            ok = 1
        except (KeyFileError, OSError):
            ok = 0
        return GaugeMetricFamily("tipline_key_file_readable",
                                 "1 when the key file can be read and parsed", value=ok)

    def _build(self) -> GaugeMetricFamily:
        from tipline.ops.release import __version__

        info = GaugeMetricFamily("tipline_build_info", "The running release", labels=["version"])
        info.add_metric([__version__], 1)
        return info


def queue_depths(broker_url: str) -> list[tuple[str, int]]:
    """Messages waiting per queue: Redis lists, or files in the embedded broker's folder."""
    if broker_url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            return [(q, int(client.llen(q))) for q in BROKER_QUEUES]
        finally:
            client.close()
    if broker_url.startswith("filesystem://"):
        folder = Path(broker_url[len("filesystem://"):]) / "queue"  # as celeryconf lays out
        if not folder.is_dir():
            return [(q, 0) for q in BROKER_QUEUES]
        names = [p.name.partition(".")[2] for p in folder.iterdir()]  # <ms>_<uuid>.<queue>.msg
        return [(q, names.count(f"{q}.msg")) for q in BROKER_QUEUES]
    return []
