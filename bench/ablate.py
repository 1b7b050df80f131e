"""tipline's WSGI app with parts of a web tip's work switched off, for measuring only.

    BENCH_WITHOUT=surge,publish gunicorn 'bench.ablate:create()'

``bench intake --without surge publish`` serves this beside the real app, to answer one
question with a measurement: how much of the gap to the bare route would closing a part
close? ``surge``: no grouping signature is made or stored (a tip then alerts alone);
``publish``: the routing job is stored but not published to the broker (only the sweep
would route it). Both are work a real tip needs, so this app must never serve anyone: it
is built only when ``BENCH_WITHOUT`` names what to switch off, and ``bench/`` is not
installed with the package.
"""

from __future__ import annotations

import os
from typing import Any

PARTS = ("surge", "publish")


def _switch_off(app: Any, parts: list[str]) -> None:
    from tipline.surge import services as surge

    if "surge" in parts:
        surge.at_intake = lambda *args, **kwargs: None  # create_tip's one call to it
    if "publish" in parts:
        app.extensions["tipline"].queue.send_routing = lambda job_id: True


def create() -> Any:
    """The app, with the parts ``BENCH_WITHOUT`` names switched off (gunicorn's
    ``bench.ablate:create()``)."""
    parts = [p for p in os.environ.get("BENCH_WITHOUT", "").split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if not parts or unknown:
        raise SystemExit(f"BENCH_WITHOUT must name some of {', '.join(PARTS)} "
                         f"(got {os.environ.get('BENCH_WITHOUT', '')!r})")
    from tipline.wsgi import app

    _switch_off(app, parts)
    return app
