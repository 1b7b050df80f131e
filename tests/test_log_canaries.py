"""At DEBUG, nothing that identifies a reporter reaches the logs, third-party loggers included.

Logging is configured at DEBUG exactly as the web, the workers and the CLI configure it
(``create_app`` calls ``configure_logging(settings.log_level)``). Then a web tip with a photo
whose EXIF text tags and GPS hold canary strings, a signed SMS and an MMS from a canary
number, the media worker (the real Twilio SDK against the Prism mock, the media fetched over
HTTP) and a staff reply relayed by SMS all run, and every line the log handlers wrote is
scanned for every canary.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from tests.conftest import BoundDatabase
from tests.intake.helpers import nonce_from, open_form, tip_fields
from tests.telephony.conftest import (
    media_server,
    tw_settings,
    twilio_mock_url,
)
from tests.telephony.helpers import run_all, send_mms, send_sms, staff_reply
from tests.twilio_support import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    TEST_FROM_NUMBER,
    RecordingHttpClient,
)
from tests.web.limits import build_app
from tipline import crypto
from tipline.db import utcnow
from tipline.telephony import media
from tipline.telephony.client import RestTwilioGateway
from tipline.tips.models import Tip

__all__ = ["build_app", "media_server", "tw_settings", "twilio_mock_url"]

PHONE = "+13145550163"
ADDRESS = "203.0.113.77"
FORWARDED = "198.51.100.9"
AGENT = "CanaryBrowser/7.7 (DeviceModel-QX81)"
WEB_TEXT = "Canary web words: Morgan Sample hides a knife in gym bag 5521"
SMS_TEXT = "Canary sms words: Riley Placeholder brings a gun on Tuesday"
STAFF_TEXT = "Canary staff question for Riley about Tuesday"
EXIF = {
    0x010E: "ExifDescriptionCanary",  # ImageDescription
    0x010F: "ExifMakeCanary",  # Make
    0x0110: "ExifModelCanary",  # Model
    0x013B: "ExifArtistCanary",  # Artist
    0x8298: "ExifCopyrightCanary",  # Copyright
    0x0131: "ExifSoftwareCanary",  # Software
}
GPS = {1: "N", 2: (38.0, 37.0, 41.2293), 3: "W", 4: (90.0, 12.0, 5.6189),
       18: "GpsDatumCanary", 29: "2026:11:30"}


def photo_with_canaries(size: tuple[int, int] = (64, 48)) -> bytes:
    exif = Image.Exif()
    for tag, value in EXIF.items():
        exif[tag] = value
    exif[0x8825] = GPS
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


# Made before logging is captured: the test's own encoding is not the app's logging.
PHOTO = photo_with_canaries()


def _phone_forms(number: str) -> list[str]:
    digits = number.lstrip("+")
    local = digits[-10:]
    return [number, digits, local, f"({local[:3]}) {local[3:6]}-{local[6:]}",
            f"{local[:3]}-{local[3:6]}-{local[6:]}", "%2B" + digits]


def canaries(media_urls: list[str]) -> list[str]:
    words = [*_phone_forms(PHONE), ADDRESS, FORWARDED, AGENT, "CanaryBrowser",
             "DeviceModel-QX81", WEB_TEXT, "Morgan Sample", SMS_TEXT, "Riley Placeholder",
             STAFF_TEXT, *EXIF.values(), "GpsDatumCanary", "41.2293", "5.6189"]
    for url in media_urls:
        words.append(url)
        words += re.findall(r"(?:MM|ME)[0-9a-f]{32}", url)
    return words


@pytest.fixture(params=["text", "json"])
def log_format(request: pytest.FixtureRequest) -> str:
    """Every canary test runs with both log formats (``TIPLINE_LOG_FORMAT``)."""
    return str(request.param)


@pytest.fixture
def log_lines(log_format: str) -> Iterator[io.StringIO]:
    """Everything the configured log handlers write, at DEBUG, as the app configures it."""
    from tipline.logconfig import configure_logging

    configure_logging("DEBUG", log_format)
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_tipline", False)]
    assert ours, "configure_logging installed no handler"
    sink = io.StringIO()
    saved = [h.setStream(sink) for h in ours]  # type: ignore[attr-defined]
    try:
        yield sink
    finally:
        for handler, stream in zip(ours, saved, strict=True):
            handler.setStream(stream)  # type: ignore[attr-defined]
        configure_logging("INFO")


@pytest.fixture
def debug_app(tw_settings, pg_engine, connection, queue, vault, log_lines, log_format) -> Any:
    from tipline.app import create_app

    application = create_app(tw_settings.with_overrides(log_level="DEBUG",
                                                        log_format=log_format),
                             db=BoundDatabase(pg_engine, connection), queue=queue)
    application.config.update(TESTING=True)
    crypto.install(vault)
    assert logging.getLogger().level == logging.DEBUG
    return application


def test_no_canary_reaches_the_logs_at_debug(debug_app, log_lines, db_session, vault, queue,
                                             demo_directory, media_server,
                                             twilio_mock_url, log_format) -> None:
    client = debug_app.test_client()
    client.environ_base.update({"REMOTE_ADDR": ADDRESS, "HTTP_USER_AGENT": AGENT,
                                "HTTP_X_FORWARDED_FOR": FORWARDED})
    # The web form, with a photo full of metadata.
    token, html = open_form(client)
    resp = client.post("/report", data=tip_fields(
        token, body=WEB_TEXT, submission=nonce_from(html),
        attachments=[(io.BytesIO(PHOTO), "IMG_2041.JPG", "image/jpeg")],
    ), content_type="multipart/form-data")
    assert resp.status_code == 200
    # A text and a picture message from the canary number, signed as Twilio signs them.
    assert send_sms(client, SMS_TEXT, frm=PHONE).status_code == 200
    send_sms(client, "vashon", frm=PHONE)
    send_mms(client, media_server, [(PHOTO, "image/jpeg")], body="",
             frm=PHONE)
    media_urls = [media_server.base_url + path for path in media_server.files]
    # The media worker: fetch over HTTP, strip, seal, store, delete at Twilio (the real SDK).
    http = RecordingHttpClient()
    gateway = RestTwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM_NUMBER,
                                api_base=twilio_mock_url, http_client=http)
    assert run_all(db_session, vault, gateway, queue) == ["done"]
    # A staff question relayed to the reporter's phone.
    tip = db_session.execute(select(Tip).where(Tip.channel == "sms")).scalar_one()
    msg = staff_reply(db_session, tip, STAFF_TEXT)
    assert media.relay_sms(db_session, gateway, msg.id, utcnow()) == "sent"
    assert any(r.data.get("To") == PHONE for r in http.sent)  # it really went to the number
    logging.getLogger("tipline.test").debug("end of the canary run")

    written = log_lines.getvalue()
    assert "end of the canary run" in written  # the capture works at DEBUG
    leaks = [(word, line) for line in written.splitlines()
             for word in canaries(media_urls) if word in line]
    assert not leaks, "\n".join(sorted({f"{word!r} in: {line[24:300]}" for word, line in leaks}))
    if log_format == "json":  # one object per line, the same field names on every line
        from tipline.logconfig import JSON_FIELDS

        for line in written.splitlines():
            assert set(JSON_FIELDS) <= set(json.loads(line)), line[:200]


def test_json_lines_carry_a_random_request_id_per_request(debug_app, log_lines,
                                                          log_format) -> None:
    from flask import Flask

    log = logging.getLogger("tipline.canary")
    probe = Flask("probe")
    from tipline.logconfig import install_request_ids

    install_request_ids(probe)

    @probe.get("/x")
    def _x() -> str:
        log.warning("inside a request")
        return "ok"

    client = probe.test_client()
    client.environ_base.update({"REMOTE_ADDR": ADDRESS, "HTTP_X_REQUEST_ID": "chosen-by-client"})
    client.get("/x")
    client.get("/x", headers={"X-Request-Id": "chosen-by-client"})
    log.warning("outside a request")
    # In either format an id a client sends is never written.
    assert "chosen-by-client" not in log_lines.getvalue()
    if log_format == "text":  # the request id is a field of the JSON lines only
        assert log_lines.getvalue().count("inside a request") == 2
        return
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    inside = [ln["request_id"] for ln in lines if ln["message"] == "inside a request"]
    outside = [ln["request_id"] for ln in lines if ln["message"] == "outside a request"]
    assert len(inside) == 2 and inside[0] != inside[1]
    assert all(re.fullmatch(r"[0-9a-f]{16}", rid) for rid in inside)
    assert outside == [None]
    assert "chosen-by-client" not in log_lines.getvalue()


def test_werkzeug_request_log_and_library_debug_stay_quiet_at_debug(log_lines) -> None:
    logging.getLogger("werkzeug").info('%s - - [04/Dec/2026 10:00:00] "GET /report HTTP/1.1" '
                                       '200 -', ADDRESS)
    logging.getLogger("urllib3.connectionpool").debug(
        '%s "GET %s HTTP/1.1" 200 1234', "https://api.twilio.com:443", "/Media/ME" + "1" * 32)
    logging.getLogger("PIL.TiffImagePlugin").debug("Tag 271, Type: 2, Value: %r", "SpyPhone")
    written = log_lines.getvalue()
    assert ADDRESS not in written and "ME111" not in written and "SpyPhone" not in written


def test_what_gets_through_is_redacted(log_lines) -> None:
    log = logging.getLogger("tipline.canary")
    log.warning("relay to %s failed: The 'To' number %s is not a valid phone number.", PHONE,
                PHONE)
    log.error("from %s and %s via [%s]", ADDRESS, "2001:db8::5a:77", "fe80::1%eth0")
    log.info("media https://api.twilio.com/2010-04-01/Accounts/AC%s/Messages/MM%s/Media/ME%s",
             "0" * 32, "a" * 32, "b" * 32)
    log.info("query To=%%2B%s sent at 10:00:00 by job 1733300000", PHONE.lstrip("+"))
    try:
        raise RuntimeError(f"Twilio refused {PHONE} from {ADDRESS}")
    except RuntimeError:
        log.exception("send failed")
    written = log_lines.getvalue()
    for word in (*_phone_forms(PHONE), ADDRESS, "2001:db8::5a:77", "fe80::1", "a" * 32,
                 "b" * 32, "api.twilio.com"):
        assert word not in written, word
    # ...and the rest of each line is still there to read.
    assert "is not a valid phone number" in written and "10:00:00" in written
    assert "job 1733300000" in written and "RuntimeError: Twilio refused [phone]" in written


def test_a_celery_worker_s_own_handlers_redact_too(log_lines) -> None:
    """A worker adds handlers (``celery.task`` does not propagate); they get the filter."""
    from celery import signals

    from tipline.logconfig import Redact

    task_logger = logging.getLogger("celery.task")
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    task_logger.addHandler(handler)
    try:
        signals.after_setup_task_logger.send(sender=None, logger=task_logger, loglevel=10,
                                             logfile=None, format="", colorize=False)
        assert any(isinstance(f, Redact) for f in handler.filters)
        task_logger.error("task failed for %s", PHONE)
    finally:
        task_logger.removeHandler(handler)
    assert PHONE not in sink.getvalue() and "[phone]" in sink.getvalue()


_RELAYED: list[str] = []
STAND_IN = "tests.relay_sms_stand_in"  # the arguments of tipline.relay_sms


def _relay_stand_in(message_id: int, job_key: str | None = None) -> None:
    _RELAYED.append(job_key or "")


def test_a_worker_at_debug_logs_no_task_s_arguments(log_lines) -> None:
    """A real Celery worker started at DEBUG (``--loglevel=DEBUG``) runs a task with a staff
    reply's relay arguments (``tipline.relay_sms``'s): the job key among them, which opens
    the reply's stored payload (the texter's number and the reply), reaches no log line,
    though the task ran. Celery's pool writes every task's arguments at DEBUG unless its
    logger is held at WARNING."""
    import time

    from celery.contrib.testing.worker import start_worker

    from tests.conftest import REDIS_URL
    from tipline.celeryconf import build_celery
    from tipline.jobs import CeleryQueue
    from tipline.settings import Settings
    from tipline.telephony.relay import open_payload, seal_payload

    celery = build_celery(Settings(mode="test", broker_url=REDIS_URL))
    # A name of its own: Celery keeps the first callable registered under a task name, for
    # every app, and the workers' real relay task (registered when another test imports the
    # workers) needs an app context. Both log formats' runs record into the module's list.
    celery.task(name=STAND_IN, acks_late=True, ignore_result=True)(_relay_stand_in)

    uid = "a" * 32
    sealed, job_key = seal_payload(uid, PHONE, "Which locker did you see it in?")
    with start_worker(celery, pool="solo", loglevel="DEBUG", perform_ping_check=False,
                      shutdown_timeout=10):
        assert CeleryQueue(celery, 2.0).send_task(STAND_IN, 7, job_key)
        deadline = time.monotonic() + 20
        while job_key not in _RELAYED and time.monotonic() < deadline:
            time.sleep(0.05)
    assert job_key in _RELAYED, "the worker did not run the task"
    written = log_lines.getvalue()
    assert STAND_IN in written  # the worker's lines about the task are in the sink
    assert job_key not in written
    assert open_payload(uid, sealed, job_key)[0] == PHONE  # what the key would have opened


def _gunicorn_output(requests: list[bytes], client_address: str, tmp_path: Any) -> str:
    """What gunicorn, started with the project's config, writes while serving ``requests``.

    The app is the standard library's demo WSGI app: this is about gunicorn's own logs.
    """
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.livesupport import free_port

    repo = Path(__file__).resolve().parents[1]
    port = free_port()
    out = tmp_path / "gunicorn.log"
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c",
             str(repo / "config" / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--log-level", "debug", "wsgiref.simple_server:demo_app"],
            cwd=repo, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        for raw in requests:
            while True:
                try:
                    conn = socket.create_connection(("127.0.0.1", port), timeout=5,
                                                    source_address=(client_address, 0))
                    break
                except ConnectionRefusedError:
                    assert time.monotonic() < deadline, out.read_text()
                    time.sleep(0.1)
            with conn:
                conn.sendall(raw)
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):
                    pass
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return out.read_text(errors="replace")


def test_gunicorn_s_own_logs_name_no_client(tmp_path) -> None:
    """gunicorn's error log writes the peer's address on a malformed request ("Invalid
    request from ip=..."), and its messages quote the request line; neither goes through our
    handlers, so the config must redact them too."""
    client = "127.0.0.77"  # a loopback address of its own, so it is the client's and no other
    written = _gunicorn_output([
        f"GARBAGE {PHONE} {ADDRESS}\r\n\r\n".encode(),
        f"GET /report?from=%2B{PHONE.lstrip('+')} HTTP/1.1\r\nHost: tipline\r\n"
        f"User-Agent: {AGENT}\r\nX-Forwarded-For: {FORWARDED}\r\n\r\n".encode(),
        b"GET /bad-header HTTP/1.1\r\nHost: tipline\r\nX-Bad\x01: " + PHONE.encode() + b"\r\n\r\n",
    ], client, tmp_path)
    assert "GET /report" in written  # the access log is on, and it was read
    leaks = [(word, line) for line in written.splitlines()
             for word in (client, *_phone_forms(PHONE), ADDRESS, FORWARDED, AGENT) if word in line]
    assert not leaks, "\n".join(f"{word!r} in: {line}" for word, line in leaks)


def test_a_database_error_s_detail_names_no_stored_value(log_lines, db_session, vault) -> None:
    """PostgreSQL puts the row's values in an error's DETAIL ("Key (phone_hash)=(...) already
    exists", "Failing row contains (...)"), whatever SQLAlchemy's ``hide_parameters`` says.
    A logged traceback must not carry them: a number's keyed hash in a log outlives the
    number's erasure from the database, and with the key file it gives the number back."""
    from sqlalchemy.exc import IntegrityError

    from tipline.telephony.models import SmsConversation
    from tipline.telephony.sms import PHONE_PURPOSE

    digest = vault.lookup_hash(PHONE_PURPOSE, PHONE)
    log = logging.getLogger("tipline.canary")
    db_session.add(SmsConversation(phone_hash=digest))
    db_session.flush()
    for row in (SmsConversation(phone_hash=digest),  # unique violation
                SmsConversation(phone_hash=digest[::-1], step=None)):  # not-null violation
        nested = db_session.begin_nested()
        try:
            db_session.add(row)
            db_session.flush()
        except IntegrityError as exc:
            assert digest in str(exc) or digest[::-1] in str(exc)  # PostgreSQL said it
            log.exception("could not store a conversation")
        nested.rollback()
    written = log_lines.getvalue()
    assert "IntegrityError" in written and "DETAIL" in written
    assert digest not in written and digest[::-1] not in written


def test_a_refused_request_s_bucket_is_not_logged(log_lines, build_app) -> None:
    """Flask-Limiter logs the key of every refused request at INFO: the salted digest of the
    address, which a copy of the hour's salt and the key file turn back into the address, and
    which links one client's refusals. It is held at WARNING like the other libraries."""
    from tests.web.limits import client_at, wrong_code
    from tipline.intake.views import CODE_LIMIT

    app = build_app(log_level="DEBUG")
    client = client_at(app, ADDRESS)
    statuses = [wrong_code(client) for _ in range(int(CODE_LIMIT.split()[0]) + 1)]
    assert statuses[-1] == 429
    with app.test_request_context(environ_base={"REMOTE_ADDR": ADDRESS}):
        digest = app.extensions["tipline_limiter"]._key_func()
    written = log_lines.getvalue()
    assert digest not in written and ADDRESS not in written
