"""Prometheus metrics: counters recorded where events happen, gauges read at scrape time.

Processes (gunicorn workers, Celery workers) record events through the one-line hooks below.
With ``TIPLINE_METRICS_DIR`` set, prometheus-client's multiprocess mode is switched on: each
process writes memory-mapped files under ``TIPLINE_METRICS_DIR/<hostname>`` (one folder per
container, since process ids repeat across containers) and the metrics server adds up every
folder. The variable must be set before this module is imported; nothing else imports
prometheus-client first.

Labels carry only values from closed sets (channel, category, outcome, a numeric Twilio
error code): never a school's name, a tip reference, a phone number or an address.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

_BASE = os.environ.get("TIPLINE_METRICS_DIR")
if _BASE and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    _own = Path(_BASE) / socket.gethostname()
    _own.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_own)

from prometheus_client import Counter, Histogram  # noqa: E402
from prometheus_client.metrics_core import Metric  # noqa: E402

TIP_CHANNELS = frozenset({"web", "sms", "voice"})
TIP_CATEGORIES = frozenset({"weapon", "threat", "self_harm", "bullying", "abuse", "substance",
                            "family_crisis", "basic_needs", "dating_violence", "other"})
ALERT_CHANNELS = frozenset({"sms", "voice", "email"})
OUTCOMES = frozenset({"sent", "failed", "skipped", "unknown", "retry"})

# Seconds, from a few seconds (the routing pipeline) to an hour (a slow acknowledgement).
_BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)

TIPS = Counter("tipline_tips_received", "Tips committed, by channel and category",
               ["channel", "category"])
ROUTING_FAILED = Counter("tipline_routing_failed",
                         "Tips whose routing matched no contact (nobody alerted)")
DELIVERIES = Counter("tipline_deliveries", "Alert delivery attempts by channel and outcome",
                     ["channel", "outcome"])
ESCALATIONS = Counter("tipline_escalations",
                      "Escalation events: missed deadlines, steps activated, repeats",
                      ["kind"])
SWEEP_RESENDS = Counter("tipline_sweep_resends", "Jobs and deliveries the sweep re-sent",
                        ["kind"])
TWILIO_ERRORS = Counter("tipline_twilio_errors", "Errors from Twilio's API by error code",
                        ["code"])
FIRST_ALERT = Histogram("tipline_commit_to_first_alert_seconds",
                        "Time from a tip's commit to its first alert accepted by a provider",
                        buckets=_BUCKETS)
ACKNOWLEDGED = Histogram("tipline_commit_to_ack_seconds",
                         "Time from a tip's commit to its acknowledgement", buckets=_BUCKETS)


def _one_of(value: object, allowed: frozenset[str], default: str = "other") -> str:
    text = str(value)
    return text if text in allowed else default


def tip_received(channel: str, category: str) -> None:
    """After the intake commit: one tip, by channel and category."""
    TIPS.labels(_one_of(channel, TIP_CHANNELS), _one_of(category, TIP_CATEGORIES)).inc()


def routing_result(routed: bool, dispatches: int) -> None:
    """After a routing job ran: count it when it routed the tip to nobody."""
    if routed and dispatches == 0:
        ROUTING_FAILED.inc()


def delivery_outcome(channel: str | None, outcome: str) -> None:
    DELIVERIES.labels(_one_of(channel, ALERT_CHANNELS), _one_of(outcome, OUTCOMES)).inc()


def escalation(expired: int, activated: int, repeated: int) -> None:
    for kind, n in (("deadline_missed", expired), ("step_activated", activated),
                    ("repeat", repeated)):
        if n:
            ESCALATIONS.labels(kind).inc(n)


def sweep_resent(jobs: int, deliveries: int) -> None:
    for kind, n in (("routing_job", jobs), ("delivery", deliveries)):
        if n:
            SWEEP_RESENDS.labels(kind).inc(n)


def twilio_error(code: int | None, status: int = 0) -> None:
    """A Twilio error code is a number; anything else is counted by HTTP status class."""
    if code is not None and 0 < int(code) < 100000:
        label = str(int(code))
    else:
        label = f"http_{int(status) // 100}xx" if status else "network"
    TWILIO_ERRORS.labels(label).inc()


def first_alert(committed: datetime, sent: datetime) -> None:
    FIRST_ALERT.observe(max(0.0, (sent - committed).total_seconds()))


def acknowledged(committed: datetime, at: datetime) -> None:
    ACKNOWLEDGED.observe(max(0.0, (at - committed).total_seconds()))


# -- multiprocess files ----------------------------------------------------------------------
def multiprocess_dir() -> Path | None:
    raw = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(raw) if raw else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_files(folder: Path | None = None) -> int:
    """At a server's or worker's start: drop this container's files of processes that are
    gone (their counts restart, which Prometheus's ``rate`` takes as a counter reset)."""
    folder = folder or multiprocess_dir()
    if folder is None or not folder.is_dir():
        return 0
    removed = 0
    for path in folder.glob("*.db"):
        tail = path.stem.rsplit("_", 1)[-1]
        if tail.isdigit() and not _pid_alive(int(tail)) and int(tail) != os.getpid():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def child_exit(pid: int) -> None:
    """gunicorn's ``child_exit``: the worker's live gauges go (counters stay summed)."""
    from prometheus_client import multiprocess

    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)


def metric_files(base: Path) -> list[str]:
    """Every process's files: ``base`` itself and one folder below (one per container)."""
    return sorted(str(p) for p in (*base.glob("*.db"), *base.glob("*/*.db")))


class MultiFolderCollector:
    """prometheus-client's multiprocess merge over every container's folder."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.multiprocess import MultiProcessCollector

        return iter(MultiProcessCollector.merge(metric_files(self.base), accumulate=True))


def metric_names(families: Iterable[object]) -> set[str]:
    return {getattr(f, "name", "") for f in families}
