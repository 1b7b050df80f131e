"""Metrics: real traffic (a web tip, an SMS tip, routing, alerts, an acknowledgement), then a
scrape of the metrics port over HTTP, and the numbers read back; multiprocess files merged."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from twilio.base.exceptions import TwilioRestException

from tests.intake.helpers import post_tip
from tests.telephony.helpers import REPORTER, send_sms
from tipline.db import utcnow
from tipline.ops import endpoint, metrics
from tipline.ops.state import StateCollector
from tipline.routing.ack import acknowledge_dispatch
from tipline.routing.models import AlertDelivery, Dispatch, RoutingJob
from tipline.telephony.client import _translate
from tipline.tips.models import Tip

ROOT = Path(__file__).resolve().parents[2]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(snap: dict[Any, float], name: str, **labels: str) -> float:
    return snap.get((name, tuple(sorted(labels.items()))), 0.0)


def own_metrics() -> dict[Any, float]:
    from prometheus_client import generate_latest

    return samples(generate_latest(REGISTRY).decode())


def test_scrape_after_real_traffic_counts_what_happened(tw_app, tw_client, tw_settings,
                                                        db_session, demo_directory, connection,
                                                        queue):
    from workers.tasks import run_deliver_alert, run_route_job

    before = own_metrics()
    resp = post_tip(tw_client, category="weapon", danger_now="yes",
                    body="He showed a gun in his backpack at lunch")
    assert resp.status_code in (200, 303)
    send_sms(tw_client, "A kid at Soldan is selling pills in the bathroom")
    tips = db_session.execute(select(Tip).order_by(Tip.id)).scalars().all()
    assert [t.channel for t in tips] == ["web", "sms"]

    with tw_app.app_context():
        for job in db_session.execute(select(RoutingJob.id)).scalars().all():
            run_route_job(job)
        delivery_ids = db_session.execute(select(AlertDelivery.id)).scalars().all()
        assert delivery_ids
        for dl in delivery_ids:
            run_deliver_alert(dl)
    db_session.expire_all()
    sent = db_session.execute(
        select(AlertDelivery.channel).where(AlertDelivery.status == "sent")).scalars().all()
    weapon = tips[0]
    first = db_session.execute(select(Dispatch.id).where(Dispatch.tip_id == weapon.id)
                               .order_by(Dispatch.id)).scalars().first()
    assert acknowledge_dispatch(db_session, first, via="dashboard", now=utcnow())
    db_session.commit()
    with __import__("pytest").raises(Exception):
        raise _translate(TwilioRestException(400, "/x", "bad", code=21211), "sms")

    # The scrape's gauges read the test's transaction (its data is never committed).
    server = endpoint.serve_in_thread(tw_settings, "127.0.0.1:0",
                                      StateCollector(tw_settings, bind=connection))
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    after = samples(text)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("tipline_tips_received_total", channel="web", category="weapon") == 1
    assert delta("tipline_tips_received_total", channel="sms",
                 category=tips[1].category) == 1
    for channel in set(sent):
        assert delta("tipline_deliveries_total", channel=channel, outcome="sent") == \
            sent.count(channel)
    assert delta("tipline_commit_to_first_alert_seconds_count") == 2  # one per tip
    assert delta("tipline_commit_to_ack_seconds_count") >= 1
    assert delta("tipline_twilio_errors_total", code="21211") == 1
    assert value(after, "tipline_database_up") == 1
    assert value(after, "tipline_key_file_readable") == 1
    assert value(after, "tipline_tips_last_day") >= 2
    assert ("tipline_queue_depth" in text) and ("tipline_build_info" in text)
    # Nothing identifying in any label: no reference, phone, school name or address.
    labels = " ".join(str(k[1]) for k in after)
    for tip in tips:
        assert tip.reference not in text
    assert REPORTER not in text and REPORTER.lstrip("+") not in text
    assert not re.search(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}", labels)
    assert "Soldan" not in text and "Roosevelt" not in text


def test_an_unacknowledged_life_safety_tip_is_a_gauge_with_its_age(app, tw_settings, db_session,
                                                                   demo_directory, connection,
                                                                   vault, queue):
    from datetime import timedelta

    from tests.factories import make_tip
    from tipline.tips.models import Severity

    r = make_tip(db_session, vault, queue, severity=Severity.LIFE_SAFETY)
    tip = db_session.get(Tip, r.tip_id)
    tip.created_at = utcnow() - timedelta(minutes=12)
    db_session.commit()
    found = {m.name: m for m in StateCollector(tw_settings, bind=connection).collect()}
    assert found["tipline_unacknowledged_life_safety_tips"].samples[0].value == 1
    age = found["tipline_oldest_unacknowledged_life_safety_seconds"].samples[0].value
    assert 700 < age < 800


def test_labels_only_take_values_from_closed_sets():
    before = own_metrics()
    metrics.tip_received("web", "Roosevelt High, 3230 Hartford St")
    metrics.delivery_outcome("+13145550100", "sent")
    metrics.twilio_error(None, 503)
    after = own_metrics()
    assert value(after, "tipline_tips_received_total", channel="web", category="other") - \
        value(before, "tipline_tips_received_total", channel="web", category="other") == 1
    assert value(after, "tipline_deliveries_total", channel="other", outcome="sent") - \
        value(before, "tipline_deliveries_total", channel="other", outcome="sent") == 1
    assert value(after, "tipline_twilio_errors_total", code="http_5xx") >= 1


def test_broken_database_and_key_file_are_reported_not_raised(tw_settings, tmp_path):
    broken = tw_settings.with_overrides(database_url="postgresql://nobody@127.0.0.1:1/none",
                                        key_file=tmp_path / "missing.json")
    found = {m.name: m for m in StateCollector(broken).collect()}
    assert found["tipline_database_up"].samples[0].value == 0
    assert found["tipline_key_file_readable"].samples[0].value == 0


_CHILD = """
from datetime import datetime
from tipline.ops import metrics
metrics.tip_received("sms", "threat")
metrics.first_alert(datetime(2026, 1, 1), datetime(2026, 1, 1, 0, 0, 7))
"""


def test_multiprocess_files_of_several_processes_add_up(tmp_path):
    env = dict(os.environ, TIPLINE_METRICS_DIR=str(tmp_path))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    for _ in range(3):
        subprocess.run([sys.executable, "-c", _CHILD], env=env, check=True, cwd=ROOT,
                       timeout=60)
    files = metrics.metric_files(tmp_path)
    assert files and all(Path(f).parent.parent == tmp_path for f in files)  # one per host
    families = list(metrics.MultiFolderCollector(tmp_path).collect())
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    assert got[("tipline_tips_received_total", (("category", "threat"), ("channel", "sms")))] == 3
    assert got[("tipline_commit_to_first_alert_seconds_count", ())] == 3
    assert got[("tipline_commit_to_first_alert_seconds_bucket", (("le", "10.0"),))] == 3
    # The three processes are gone: a new start drops their files.
    folder = Path(files[0]).parent
    assert metrics.remove_dead_files(folder) == len(files)
    assert metrics.metric_files(tmp_path) == []


def test_gunicorn_config_serves_metrics_and_cleans_up_after_workers():
    conf = (ROOT / "config" / "gunicorn.conf.py").read_text()
    for hook in ("def on_starting", "def when_ready", "def child_exit"):
        assert hook in conf
