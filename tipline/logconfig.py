"""Logging that never records who a reporter is, at any level (web, workers and CLI).

Two lines of defence, both installed by ``configure_logging``:

1. Third-party loggers that print payloads are held at WARNING whatever
   ``TIPLINE_LOG_LEVEL`` says: at DEBUG Pillow's TIFF reader prints every EXIF tag value
   (maker, model, description, GPS), urllib3 prints every request line (Twilio media URLs and
   SIDs), the Twilio SDK prints every API request at INFO, Werkzeug's request log starts
   with the client address, and Flask-Limiter prints a refused request's key (the salted
   digest of the address) at INFO.
2. A filter on our handlers rewrites whatever still gets through: phone numbers (E.164, also
   URL-encoded), IPv4 and IPv6 addresses, Twilio API URLs and message, media, call and
   recording SIDs, and the row values PostgreSQL quotes in a constraint error's DETAIL, in
   the message and in tracebacks.

Gunicorn's access format (config/gunicorn.conf.py) leaves address and user agent out, and its
logger class puts gunicorn's own error and access logs (which do not reach the root handler)
through ``Redact`` too. Waitress (the embedded server) writes no access log.

``TIPLINE_LOG_FORMAT=json`` writes one JSON object per line with stable field names
(``JSON_FIELDS``) for a log shipper; the record has been through ``Redact`` by then. The
request id is random per web request (or the Celery task id in a worker): it ties the lines
of one request together and says nothing about who sent it.
"""

from __future__ import annotations

import contextvars
import ipaddress
import json
import logging
import re
import secrets
from datetime import UTC, datetime
from typing import Any

# Loggers that print request lines, payloads or image metadata below WARNING.
QUIET_LOGGERS = (
    "PIL",  # TiffImagePlugin: EXIF tag values; PngImagePlugin: text chunks
    "urllib3",  # connectionpool: method, URL and status of every request
    "requests",
    "charset_normalizer",  # guesses the encoding of response bodies
    "twilio",  # twilio.http_client: every API request's URL and query at INFO
    "werkzeug",  # the development server's request log: client address first
    "flask-limiter",  # every refused request's key: the salted digest of the client address
    # A worker's "TaskPool: Apply" line at DEBUG: every task's arguments, among them the key
    # that opens a staff reply's stored payload (the texter's number and the reply).
    "celery.pool",
)

_PHONE = re.compile(r"(?:\+|%2[bB])\d{7,15}\b")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
_TWILIO_URL = re.compile(r"https?://[\w.-]*twilio\.com/\S*")
_SID = re.compile(r"\b(MM|ME|SM|CA|RE|TR)[0-9a-fA-F]{32}\b")
# PostgreSQL's DETAIL of a constraint error quotes the row's values (a number's keyed hash
# among them), whatever SQLAlchemy's ``hide_parameters`` hides.
_PG_DETAIL = re.compile(r"^(DETAIL:\s+(?:Key \([^)\n]*\)=|Failing row contains ))\(.*$",
                        re.MULTILINE)


def _ipv6(match: re.Match[str]) -> str:
    try:
        ipaddress.IPv6Address(match.group(0))
    except ValueError:
        return match.group(0)  # a time of day, a MAC-like token: not an address
    return "[address]"


def redact(text: str) -> str:
    """``text`` with phone numbers, IP addresses, Twilio URLs and SIDs, and the values in a
    database error's DETAIL, replaced."""
    text = _PG_DETAIL.sub(r"\1([values])", text)
    text = _TWILIO_URL.sub("[twilio-url]", text)
    text = _SID.sub(lambda m: m.group(1) + "[sid]", text)
    text = _PHONE.sub("[phone]", text)
    text = _IPV4.sub("[address]", text)
    return _IPV6.sub(_ipv6, text)


class Redact(logging.Filter):
    """Rewrites a record's message, traceback and stack so no identifier reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def redact_handlers(logger: logging.Logger | None = None, **_: object) -> None:
    """Put the filter on every handler of ``logger`` (default: root) that lacks it.

    Connected to Celery's ``after_setup_logger``/``after_setup_task_logger``: a worker adds
    handlers of its own (the ``celery.task`` one does not propagate to ours).
    """
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, Redact) for f in handler.filters):
            handler.addFilter(Redact())


def _cover_celery_handlers() -> None:
    from celery import signals

    for signal in (signals.after_setup_logger, signals.after_setup_task_logger):
        signal.connect(redact_handlers, weak=False, dispatch_uid="tipline-redact")
    signals.task_prerun.connect(_task_started, weak=False, dispatch_uid="tipline-request-id")
    signals.task_postrun.connect(_task_ended, weak=False, dispatch_uid="tipline-request-id-end")


# -- request ids and JSON lines --------------------------------------------------------------
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("tipline_request_id",
                                                                       default=None)
JSON_FIELDS = ("time", "level", "logger", "message", "request_id", "process")


def install_request_ids(app: Any) -> None:
    """A fresh random id for each web request, never one a client sends."""

    def _start() -> None:
        REQUEST_ID.set(secrets.token_hex(8))

    def _end(_exc: BaseException | None = None) -> None:
        REQUEST_ID.set(None)

    app.before_request(_start)
    app.teardown_request(_end)


def _task_started(task_id: str | None = None, **_: object) -> None:
    REQUEST_ID.set(task_id)


def _task_ended(**_: object) -> None:
    REQUEST_ID.set(None)


class JsonLines(logging.Formatter):
    """One JSON object per line: ``JSON_FIELDS`` always, ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": REQUEST_ID.get(),
            "process": record.process,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = record.stack_info
        return json.dumps(data, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str, fmt: str = "text") -> None:
    root = logging.getLogger()
    ours: list[logging.Handler] = [h for h in root.handlers if getattr(h, "_tipline", False)]
    if not ours:
        new = logging.StreamHandler()
        new._tipline = True  # type: ignore[attr-defined]
        new.addFilter(Redact())
        root.addHandler(new)
        ours = [new]
    for handler in ours:
        handler.setFormatter(JsonLines() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    _cover_celery_handlers()
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # waitress logs queue depth warnings only; keep them.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    # The embedded filesystem broker has no host; kombu warns about that at every start.
    logging.getLogger("kombu.connection").setLevel(logging.ERROR)
