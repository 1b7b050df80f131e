"""The metrics endpoint: its own port, never a route of the public app.

gunicorn starts it in its master process (``config/gunicorn.conf.py``, ``when_ready``);
``tipline run`` starts it beside the embedded server; ``tipline metrics serve`` runs it
alone. Bind it where only the Prometheus server can reach it (compose does not publish it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client.metrics_core import Metric

from tipline.settings import Settings

DEFAULT_PORT = 9108


def build_registry(settings: Settings, state: Any = None) -> Any:
    """Every process's counters (multiprocess files, or this process's) and the state gauges."""
    import os

    from prometheus_client import REGISTRY, CollectorRegistry

    from tipline.ops import metrics
    from tipline.ops.state import StateCollector

    base = os.environ.get("TIPLINE_METRICS_DIR")
    if base:
        registry = CollectorRegistry()
        registry.register(metrics.MultiFolderCollector(Path(base)))
    else:
        registry = CollectorRegistry()
        registry.register(_Forward(REGISTRY))
    registry.register(state or StateCollector(settings))
    return registry


class _Forward:
    """This process's own metrics (no multiprocess folder): the default registry's."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        return iter(self.registry.collect())


def make_metrics_app(settings: Settings, state: Any = None) -> Any:
    from prometheus_client import make_wsgi_app

    return make_wsgi_app(build_registry(settings, state))


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No request log: it would start with the scraper's address."""


def parse_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    if not port.isdigit() or not host:
        raise ValueError(f"expected HOST:PORT, got {bind!r}")
    return host.strip("[]"), int(port)


def serve_in_thread(settings: Settings, bind: str, state: Any = None) -> WSGIServer:
    """Serve the metrics on ``bind`` from a daemon thread; returns the server (to shut down)."""
    host, port = parse_bind(bind)
    server = make_server(host, port, make_metrics_app(settings, state), handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="tipline-metrics", daemon=True).start()
    return server
