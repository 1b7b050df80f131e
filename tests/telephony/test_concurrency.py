"""Twilio's retries and simultaneous callbacks, with real commits from parallel threads: one
tip per MessageSid or CallSid, one conversation per number, whatever the interleaving."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from tests.conftest import DEMO_DIRECTORY, PG_URL
from tests.livesupport import create_fresh_database, truncate_all
from tipline.db import Database, make_engine, utcnow
from tipline.directory.loader import load_directory_file
from tipline.jobs import RecordingQueue
from tipline.telephony.models import InboundEvent, SmsConversation, TelephonyTask
from tipline.telephony.schools import INDEX
from tipline.telephony.sms import InboundSms, handle_inbound_sms
from tipline.telephony.voice import ensure_voice_tip, take_transcription
from tipline.tips.models import Attachment, Message, Tip

THREADS = 6


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    url = str(make_url(PG_URL).set(database=make_url(PG_URL).database + "_tel"))
    create_fresh_database(url)
    yield url
    target = make_url(url)
    admin = make_engine(str(target.set(database="postgres")), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def db(live_url: str) -> Iterator[Database]:
    truncate_all(live_url)
    database = Database(live_url)
    with database.session() as s:
        load_directory_file(s, DEMO_DIRECTORY)
    INDEX.clear()
    yield database
    database.dispose()


def run_together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in n threads released at the same instant; re-raise any error."""
    gate = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def runner(i: int) -> None:
        gate.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise errors[0]
    return results


def count(db: Database, model: Any) -> int:
    with db.sessions() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def test_simultaneous_retries_of_one_message_store_one_tip(db, vault) -> None:
    queue = RecordingQueue()
    sms = InboundSms("SM" + "a" * 32, "+13145550188", "a gun in a locker at vashon")

    def deliver(_: int) -> str:
        with db.session() as s:
            return handle_inbound_sms(s, vault, queue, sms, utcnow()).kind

    kinds = run_together(THREADS, deliver)
    assert sorted(kinds) == ["duplicate"] * (THREADS - 1) + ["new_tip"]
    assert count(db, Tip) == 1 and count(db, Message) == 1 and count(db, InboundEvent) == 1
    assert [name for name, _ in queue.sent].count("tipline.route_job") == 1


def test_simultaneous_first_texts_from_one_phone_open_one_tip(db, vault) -> None:
    queue = RecordingQueue()

    def deliver(i: int) -> str:
        sms = InboundSms(f"SM{i:032x}", "+13145550188", f"part {i} of my message")
        with db.session() as s:
            return handle_inbound_sms(s, vault, queue, sms, utcnow()).kind

    kinds = run_together(THREADS, deliver)
    assert kinds.count("new_tip") == 1
    assert count(db, Tip) == 1 and count(db, Message) == THREADS
    assert count(db, SmsConversation) == 1


def test_voice_callbacks_arriving_together_make_one_tip(db, vault) -> None:
    queue = RecordingQueue()
    call, rec = "CA" + "b" * 32, "RE" + "c" * 32
    url = "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/" + rec

    def callback(i: int) -> str:
        with db.session() as s:
            if i % 3 == 2:
                take_transcription(s, vault, queue, call_sid=call,
                                   transcription_sid="TR" + "d" * 32, recording_sid=rec,
                                   recording_url=url, status="completed", text="a fight")
                return "transcription"
            return ensure_voice_tip(s, vault, queue, call_sid=call, recording_sid=rec,
                                    recording_url=url).code

    results = run_together(THREADS, callback)
    codes = {r for r in results if r != "transcription"}
    assert len(codes) == 1  # every request would speak the same code
    assert count(db, Tip) == 1 and count(db, Attachment) == 1
    with db.sessions() as s:
        kinds = sorted(s.execute(select(TelephonyTask.kind)).scalars())
        assert kinds == ["recording", "transcription"]
        assert s.execute(select(Attachment)).scalar_one().transcript == "a fight"
