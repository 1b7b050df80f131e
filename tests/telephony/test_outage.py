"""Outages: with the database down the reporter is told where else to get help; with Redis
down the webhook still commits and answers fast, and the sweep sends the work later."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import BoundDatabase
from tests.telephony.helpers import new_sid, reply_text, said, send_sms, twiml, voice_params
from tests.twilio_support import signed_post
from tipline.db import Database, utcnow
from tipline.jobs import CeleryQueue, RecordingQueue
from tipline.routing.models import RoutingJob
from tipline.telephony import media
from tipline.telephony.models import TaskStatus, TelephonyTask
from tipline.telephony.spool import SPOOL_TASK, open_inbound
from tipline.tips.models import Tip


@pytest.fixture
def dead_db_client(tw_settings, queue, vault) -> Iterator[Any]:
    from tipline import crypto
    from tipline.app import create_app

    db = Database("postgresql://postgres@127.0.0.1:1/nowhere", connect_args={"connect_timeout": 2})
    application = create_app(tw_settings, db=db, queue=queue)
    application.config.update(TESTING=True)
    crypto.install(vault)
    yield application.test_client()
    db.dispose()


def test_sms_when_the_database_is_down_is_held_not_lost(dead_db_client, queue, vault) -> None:
    text = reply_text(send_sms(dead_db_client, "someone has a gun at roosevelt"))
    assert text is not None
    assert "being saved" in text and "911" in text and "988" in text
    assert "received" not in text  # not before the commit
    [(name, args)] = queue.sent
    assert name == SPOOL_TASK
    sid, sealed = args
    assert "gun" not in sealed and "roosevelt" not in sealed  # sealed, in the broker too
    assert open_inbound(vault, sid, sealed).body == "someone has a gun at roosevelt"


def test_spanish_sms_when_the_database_is_down_is_answered_in_spanish(dead_db_client) -> None:
    text = reply_text(send_sms(dead_db_client, "hay una pistola en la escuela de mi amigo"))
    assert text is not None
    assert "estamos guardando" in text and "911" in text and "988" in text


def test_sms_with_database_and_broker_down_says_try_again(dead_db_client, queue) -> None:
    queue.fail = True  # nowhere to hold it: the texter is told it was not saved
    text = reply_text(send_sms(dead_db_client, "someone has a gun at roosevelt"))
    assert text is not None
    assert "could not save" in text and "911" in text and "988" in text


def test_a_held_text_is_stored_once_the_database_is_back_then_answered(
        dead_db_client, queue, vault, db_session, demo_directory) -> None:
    from tipline.telephony.client import FakeTwilioGateway
    from tipline.telephony.spool import take_in_held

    send_sms(dead_db_client, "someone has a gun at roosevelt", frm="+13145550177")
    [(_name, (sid, sealed))] = queue.sent
    fake = FakeTwilioGateway()
    later = RecordingQueue()
    kwargs: dict[str, Any] = {"conversation_days": 30, "staff": None,
                              "status_callback": "https://tips.example.org/twilio/sms/status"}
    first = take_in_held(db_session, vault, later, fake, sid, sealed, utcnow(), **kwargs)
    assert first.kind == "new_tip" and first.replied
    tip = db_session.execute(select(Tip)).scalar_one()
    job = db_session.execute(select(RoutingJob).where(RoutingJob.tip_id == tip.id)).scalar_one()
    assert ("tipline.route_job", (job.id,)) in later.sent  # published after the commit
    [reply] = fake.sent
    assert reply["to"] == "+13145550177" and "911" in reply["body"]
    # The broker delivers the task again (a worker died after the commit): still one tip.
    again = take_in_held(db_session, vault, later, fake, sid, sealed, utcnow(), **kwargs)
    assert again.kind == "duplicate"
    assert [t.id for t in db_session.execute(select(Tip)).scalars()] == [tip.id]


def test_voice_when_the_database_is_down_says_where_to_get_help(dead_db_client) -> None:
    params = voice_params("voice_record_action", new_sid("CA"), RecordingSid=new_sid("RE"))
    root = twiml(signed_post(dead_db_client, "/twilio/voice/recorded", params))
    assert "9 1 1" in said(root) and "9 8 8" in said(root)
    assert "tip code" not in said(root)


@pytest.fixture
def no_redis_client(tw_settings, pg_engine, connection, vault) -> Any:
    """The app with a real Celery queue whose broker port has nothing listening."""
    from tipline import crypto
    from tipline.app import create_app
    from tipline.celeryconf import build_celery

    settings = tw_settings.with_overrides(broker_url="redis://127.0.0.1:1/0",
                                          publish_timeout_seconds=0.5)
    celery = build_celery(settings)
    application = create_app(settings, db=BoundDatabase(pg_engine, connection),
                             queue=CeleryQueue(celery, 0.5), celery=celery)
    application.config.update(TESTING=True)
    crypto.install(vault)
    return application.test_client()


def test_sms_with_redis_down_commits_answers_fast_and_the_sweep_resends(
        no_redis_client, db_session, demo_directory) -> None:
    started = time.monotonic()
    text = reply_text(send_sms(no_redis_client, "fight at vashon after school"))
    elapsed = time.monotonic() - started
    assert text is not None and "received" in text
    assert elapsed < 5.0, elapsed  # Twilio gives up after 15 s
    tip = db_session.execute(select(Tip)).scalar_one()
    job = db_session.execute(select(RoutingJob).where(RoutingJob.tip_id == tip.id)).scalar_one()
    assert job.status == "pending"  # the routing sweep (tipline.sweep) sends it later
    later = RecordingQueue()
    result = media.sweep(db_session, later, utcnow() + timedelta(minutes=2),
                         timedelta(seconds=20))
    assert result.tasks == 1  # the inbound record's deletion
    task = db_session.execute(select(TelephonyTask)).scalar_one()
    assert task.status == TaskStatus.PENDING
    assert ("tipline.telephony_task", (task.id,)) in later.sent


def test_unexpected_error_still_gives_texter_911_988_and_logs_no_number(
        tw_client, db_session, caplog, monkeypatch) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("bug while handling +13145550188")

    monkeypatch.setattr("tipline.telephony.views.handle_inbound_sms", broken)
    resp = send_sms(tw_client, "someone has a gun at roosevelt", frm="+13145550188")
    text = reply_text(resp)
    assert text is not None and "911" in text and "988" in text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged and "5550188" not in logged
    assert db_session.execute(select(Tip)).first() is None


def test_unexpected_error_still_gives_caller_911_988(tw_client, monkeypatch) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr("tipline.telephony.voice.ensure_voice_tip", broken)
    params = voice_params("voice_record_action", new_sid("CA"), RecordingSid=new_sid("RE"))
    root = twiml(signed_post(tw_client, "/twilio/voice/recorded?lang=es", params))
    assert "9 1 1" in said(root) and "9 8 8" in said(root) and "Lo sentimos" in said(root)
    # Twilio's own callbacks get a plain 500 (no TwiML to speak), and bad signatures still 403.
    status = signed_post(tw_client, "/twilio/voice/recording-status", {
        "CallSid": new_sid("CA"), "RecordingSid": new_sid("RE"), "RecordingStatus": "completed",
        "RecordingUrl": "https://api.twilio.com/x"})
    assert status.status_code == 500
    assert tw_client.post("/twilio/voice/recorded", data=params).status_code == 403
