"""The five faults of issue 11 in one short surge (``bench/faults.py`` with a short schedule):
gunicorn, a Celery worker running 8 threads and a separate beat, PostgreSQL through a proxy
that can be cut, a private Redis and the Twilio stand-in. Nothing a reporter was told was
received may go missing, every tip is routed within 30 s of the last fault, no alert goes out
twice, and a stopped Redis does not make web submits wait on it."""

from __future__ import annotations

import pytest

from bench.faults import Fault, run

pytestmark = pytest.mark.slow

SHORT = (Fault("worker kill -9", 2, 0), Fault("redis stopped", 4, 5),
         Fault("postgresql restart", 9.5, 3), Fault("twilio 500", 13, 2),
         Fault("twilio timeout", 15, 2))


def test_a_short_surge_through_five_faults(tmp_path) -> None:
    report = run(tips=60, rate=4.0, faults=SHORT, workers=1, threads=8, latency=0.05,
                 settle=120.0, workdir=tmp_path)
    print("\n".join(report.lines()))
    assert report.stored >= report.told > 0
    assert report.routed == report.stored
    assert sum(report.duplicates.values()) == 0, report.duplicates
    assert report.route_all_after_last_fault is not None
    assert report.route_all_after_last_fault <= 30, report.route_all_after_last_fault
    # Before the publish ceiling each submit waited 2.0 s (5.0 s for a hung Redis). The
    # 50 ms bound itself is measured without other load in tests/test_jobs.py; here, beside
    # the whole stack on a shared machine, the window's median must stay far below 2 s.
    assert report.submit_ms["redis stopped"][0] < 1000, report.submit_ms
    assert report.worker_restarts >= 1
