"""Gunicorn settings for tipline (docker-compose `web`). Its logs never name a client."""

import os

from gunicorn.glogging import Logger

from tipline.logconfig import Redact

wsgi_app = "tipline.wsgi:app"
bind = os.environ.get("TIPLINE_BIND", "0.0.0.0:8080")


def _default_workers() -> int:
    """One sync worker per usable core, plus one.

    A sync worker holds a core only while it computes; the extra one fills the short waits on
    PostgreSQL (the commit) and Redis. More workers than that make the cores switch between
    processes for every request and evict each other's caches: on the 2-CPU machine a web tip
    cost 3.97 ms of worker CPU with 5 workers against 3.40 ms with 3 and 3.32 ms with 2, and
    the 5 served fewer tips a second (docs/performance.md, "What changed", item 19).
    gunicorn's own 2 x cores + 1 is a starting point for applications that mostly wait.
    Capped, so a container that sees a large host's cores does not start dozens.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return min(cores + 1, 9)


workers = int(os.environ.get("TIPLINE_WEB_WORKERS") or _default_workers())
worker_class = "sync"
timeout = 30
graceful_timeout = 20
accesslog = "-"
# No %(h)s (address), %(a)s (user agent), %(f)s (referer) or %(q)s (query string).
access_log_format = '%(t)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
errorlog = "-"


class RedactingLogger(Logger):
    """gunicorn's own logs through tipline's redaction: its error log writes the peer's
    address and the request line on every malformed request ("Invalid request from ip=...")."""

    def setup(self, cfg: object) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if not any(isinstance(f, Redact) for f in handler.filters):
                    handler.addFilter(Redact())


logger_class = RedactingLogger
proxy_protocol = False

# Metrics (docs/operations.md): with TIPLINE_METRICS_BIND set (compose: 0.0.0.0:9108, a port
# it does not publish) the master serves them on their own port; workers write
# prometheus-client's multiprocess files under TIPLINE_METRICS_DIR.
METRICS_BIND = os.environ.get("TIPLINE_METRICS_BIND", "")


def on_starting(server: object) -> None:
    """Files left by this container's processes that are gone are dropped before any fork."""
    from tipline.ops.metrics import remove_dead_files

    remove_dead_files()


def when_ready(server: object) -> None:
    """Start the metrics server; a failure to start it is logged, never stops the web."""
    if not METRICS_BIND:
        return
    from tipline.ops.endpoint import serve_in_thread
    from tipline.settings import load_settings

    try:
        serve_in_thread(load_settings(), METRICS_BIND)
    except Exception as exc:
        server.log.error("metrics not served on %s: %s", METRICS_BIND, exc)  # type: ignore[attr-defined]


def child_exit(server: object, worker: object) -> None:
    from tipline.ops.metrics import child_exit as mark_dead

    mark_dead(worker.pid)  # type: ignore[attr-defined]
