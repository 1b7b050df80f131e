"""Helpers every benchmark shares: the machine's load and the production worker count."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_average() -> str:
    """The 1/5/15-minute load averages and the CPU count, printed before and after each
    benchmark so that a run measured on a busy machine shows it."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def production_workers() -> int:
    """The sync worker count ``config/gunicorn.conf.py`` gives this machine by default (its
    own rule, read from the file, so the benchmark cannot drift from production)."""
    conf = runpy.run_path(str(REPO / "config" / "gunicorn.conf.py"))
    return int(conf["_default_workers"]())
