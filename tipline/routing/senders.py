"""Alert senders: one interface, a real implementation per provider and the outbox fake.

The outbox sender records the alert in the ``outbox`` table in the caller's transaction, so the
demo and the tests can see exactly what would have gone out. Real senders (Twilio SMS/voice,
SMTP email) raise ``TransientSendError`` for failures worth retrying and ``PermanentSendError``
for ones that are not (bad number, rejected address).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol

from sqlalchemy.orm import Session

from tipline.routing.models import OutboxMessage
from tipline.routing.pacing import (
    MAX_HOLD,
    MIN_VALIDITY,
    ORDINARY_HEADROOM,
    Pacer,
    Rate,
    build_pacer,
    segments,
)
from tipline.settings import Settings
from tipline.telephony.client import (
    SentRecord,
    TwilioGateway,
    TwilioPermanentError,
    TwilioTransientError,
    build_gateway,
)

log = logging.getLogger(__name__)


class SendError(Exception):
    """Base class for a failed send."""


class TransientSendError(SendError):
    """Worth retrying later (timeout, 5xx, connection refused).

    ``unknown_outcome``: the provider may have accepted the alert (it did not answer in time);
    it must be asked before the alert is sent again (``deliver_alert``, ``resolve_sending``).
    """

    def __init__(self, message: str, unknown_outcome: bool = False) -> None:
        super().__init__(message)
        self.unknown_outcome = unknown_outcome


@dataclass(frozen=True)
class Found:
    """A provider's record of an alert it accepted: its reference and last status."""

    ref: str
    status: str
    created: datetime | None


class PermanentSendError(SendError):
    """Will not succeed by retrying (invalid number, rejected recipient)."""


class SendHeld(SendError):
    """Not handed to the provider yet: its senders' queue is full (``routing.pacing``). The
    delivery goes back to ``pending`` and is tried again in ``wait`` seconds."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


@dataclass(frozen=True)
class Alert:
    """What a channel sends. ``text`` carries no tip content unless a rule allows it."""

    channel: str  # sms | voice | email
    recipient: str
    subject: str
    text: str
    delivery_id: int  # 0 for a message that is no alert delivery (a staff account notice)
    ack_code: str | None = None
    # ``text`` without the tip content a rule allowed: what a sender that keeps a copy (the
    # outbox table) stores, so a database dump never holds tip text in clear.
    stored_text: str | None = None
    # Life-safety (paced ahead of ordinary alerts), and how long ago the delivery was
    # created (a text's validity period counts from then).
    urgent: bool = False
    age_seconds: float = 0.0
    # The dispatch's last channel is never given up: no validity ends it, pacing only delays.
    last_channel: bool = False
    # The tip it alerts (0: none): a life-safety tip's first text goes before the later
    # texts of tips already alerted (``routing.pacing``, ``group``).
    tip_id: int = 0


class AlertSender(Protocol):
    name: str

    def send(self, session: Session, alert: Alert) -> str:
        """Send ``alert``; return the provider's reference. Raise a ``SendError``."""
        ...


class OutboxSender:
    """Records alerts in the database instead of sending them (demo, tests, first run)."""

    name = "outbox"

    def send(self, session: Session, alert: Alert) -> str:
        text = alert.text if alert.stored_text is None else alert.stored_text
        row = OutboxMessage(
            delivery_id=alert.delivery_id or None,
            channel=alert.channel,
            recipient=alert.recipient,
            body=f"{alert.subject}\n{text}" if alert.channel == "email" else text,
        )
        session.add(row)
        session.flush()
        return f"outbox-{row.id}"


# -- Twilio (SMS and voice) ----------------------------------------------------------------
def alert_callback_url(public_url: str, kind: str, delivery_id: int) -> str:
    """The URL Twilio calls back for one outbound alert (see ``tipline.routing.views``)."""
    return f"{public_url.rstrip('/')}/twilio/alerts/{kind}/{delivery_id}"


@dataclass(frozen=True)
class Validity:
    """Seconds an alert may take from its creation to leaving Twilio's queue."""

    ordinary: int = 300
    urgent: int = 30


class _TwilioSender:
    """What the two Twilio senders share: the gateway, the public URL for callbacks, the
    pacing to the senders' rate (``routing.pacing``: life-safety first, ordinary alerts wait in
    tipline until their validity period is spent), and the translation of the gateway's
    errors into the retry/fallback split of ``SendError``."""

    name = "twilio"
    kind = "alert"

    def __init__(self, gateway: TwilioGateway, public_url: str, pacer: Pacer | None = None,
                 validity: Validity = Validity()) -> None:
        self.gateway = gateway
        self.public_url = public_url
        self.pacer = pacer
        self.validity = validity

    def _kept(self, alert: Alert) -> bool:
        """Never failed for its validity or the queue, only delayed: the dispatch's last
        channel (nothing to fall back to), and a life-safety call (calls per second make it
        late, not useless; its text went at the same time)."""
        return alert.last_channel or (alert.urgent and self.kind == "start_call")

    def _remaining(self, alert: Alert) -> int:
        """Seconds of validity left; none worth sending: fail now, the next channel opens."""
        validity = self.validity.urgent if alert.urgent else self.validity.ordinary
        if self._kept(alert):
            return validity
        remaining = int(validity - alert.age_seconds)
        if remaining < MIN_VALIDITY:
            raise TwilioPermanentError(f"{self.kind}: not handed to Twilio within its validity "
                                       f"period ({validity} s)")
        return remaining

    def _pace(self, alert: Alert, remaining: int, recipient: str, cost: int) -> None:
        if self.pacer is None:
            return
        kept = self._kept(alert)
        limit = float(remaining - MIN_VALIDITY) if alert.urgent else ORDINARY_HEADROOM
        max_wait = 1e9 if kept else float(remaining - MIN_VALIDITY)
        # A life-safety text names its tip: the tip's first text goes first (routing.pacing).
        group = f"tip{alert.tip_id}" if alert.urgent and alert.tip_id \
            and self.kind == "send_sms" else None
        try:
            if alert.urgent and not kept and group is None:  # life-safety: now, ahead of all
                got = self.pacer.admit(recipient, cost, limit)  # waiting in tipline
            else:  # ordinary: a turn in tipline's line; kept life-safety: a place ahead of it
                got = self.pacer.admit(recipient, cost, limit, ticket=str(alert.delivery_id),
                                       max_wait=max_wait, ahead=alert.urgent and kept,
                                       group=group)
        except Exception as exc:  # the pacer's Redis is away: send rather than hold
            log.warning("pacing unavailable (%s); sending unpaced", type(exc).__name__)
            return
        if got.ok:
            return
        if got.held:
            raise SendHeld("senders' queue full", min(MAX_HOLD, max(0.5, got.wait)))
        # Its turn would come after its validity: fail now, the next channel opens.
        raise TwilioPermanentError(f"{self.kind}: Twilio's queue {got.wait:.0f} s long, past "
                                   f"this alert's validity")

    def send(self, session: Session, alert: Alert) -> str:
        try:
            return self._send(alert)
        except TwilioTransientError as exc:
            raise TransientSendError(str(exc), exc.unknown_outcome) from None
        except TwilioPermanentError as exc:
            raise PermanentSendError(str(exc)) from None

    def lookup(self, alert: Alert) -> list[Found]:
        """What Twilio has of alerts like ``alert`` (same number; a text: the same words),
        newest first. Raises ``TransientSendError`` when Twilio cannot be asked."""
        try:
            return [Found(r.sid, r.status, r.created) for r in self._records(alert)]
        except (TwilioTransientError, TwilioPermanentError) as exc:
            raise TransientSendError(str(exc)) from None

    def _send(self, alert: Alert) -> str:
        raise NotImplementedError

    def _records(self, alert: Alert) -> list[SentRecord]:
        raise NotImplementedError


class TwilioSmsSender(_TwilioSender):
    """Sends an alert as a text from the tip line's number or Messaging Service, with a
    delivery status callback and a validity period (ValidityPeriod: what is left of it)."""

    kind = "send_sms"

    def _send(self, alert: Alert) -> str:
        remaining = self._remaining(alert)
        self._pace(alert, remaining, alert.recipient, segments(alert.text))
        return self.gateway.send_sms(
            alert.recipient, alert.text,
            status_callback=alert_callback_url(self.public_url, "sms-status", alert.delivery_id),
            validity_period=remaining)

    def _records(self, alert: Alert) -> list[SentRecord]:
        # The text names the tip's reference and its dispatch's code: it tells this
        # contact's alerts for one tip from those for others.
        return [r for r in self.gateway.find_messages(alert.recipient)
                if (r.body or "").strip() == alert.text.strip()]


class TwilioVoiceSender(_TwilioSender):
    """Places an alert call; Twilio fetches its TwiML (category, school, reference, press 1).
    Paced to the account's calls per second (one clock for every call: ``recipient`` is
    the same for all); a call has no ValidityPeriod, so an ordinary one is held in tipline
    and a life-safety one goes ahead of it."""

    kind = "start_call"

    def _send(self, alert: Alert) -> str:
        self._pace(alert, self._remaining(alert), "calls", 1)
        return self.gateway.start_call(
            alert.recipient,
            url=alert_callback_url(self.public_url, "call", alert.delivery_id),
            status_callback=alert_callback_url(self.public_url, "call-status", alert.delivery_id))

    def _records(self, alert: Alert) -> list[SentRecord]:
        return self.gateway.find_calls(alert.recipient)


# -- email over SMTP -------------------------------------------------------------------------
SMTP_TIMEOUT_SECONDS = 10.0


class SmtpEmailSender:
    """Sends an alert email with the standard library's SMTP client, one connection per alert.

    A 4xx answer, a refused connection, a timeout or a dropped connection is transient; a 5xx
    answer (unknown recipient, rejected sender) is permanent.
    """

    name = "smtp"

    def __init__(self, host: str, port: int, sender: str, username: str = "",
                 password: str = "", starttls: bool = False,
                 timeout: float = SMTP_TIMEOUT_SECONDS) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpEmailSender:
        return cls(settings.smtp_host, settings.smtp_port, settings.smtp_from,
                   settings.smtp_username, settings.smtp_password, settings.smtp_starttls)

    def send(self, session: Session, alert: Alert) -> str:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = alert.recipient
        msg["Subject"] = alert.subject
        msg["Message-ID"] = make_msgid(f"alert{alert.delivery_id}")
        msg.set_content(alert.text)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password)
                refused = smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(400 <= c < 500 for c in codes):
                raise TransientSendError(f"smtp: recipient deferred {codes}") from None
            raise PermanentSendError(f"smtp: recipient refused {codes}") from None
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise TransientSendError(f"smtp: {exc.smtp_code}") from None
            raise PermanentSendError(f"smtp: {exc.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientSendError(f"smtp: {type(exc).__name__}") from None
        if refused:
            raise PermanentSendError("smtp: recipient refused")
        return str(msg["Message-ID"]).strip("<>")[:64]


# -- choosing senders ------------------------------------------------------------------------
def build_senders(settings: Settings, gateway: TwilioGateway | None = None
                  ) -> dict[str, AlertSender]:
    """The sender per channel, as the settings choose (outbox unless configured otherwise)."""
    outbox = OutboxSender()
    out: dict[str, AlertSender] = {"sms": outbox, "voice": outbox, "email": outbox}
    if settings.alert_sender == "twilio":
        if gateway is None:
            gateway = build_gateway(settings)
        validity = Validity(settings.alert_sms_validity_seconds,
                            settings.urgent_sms_validity_seconds)
        texts = build_pacer(Rate(settings.twilio_sender_mps, settings.twilio_senders),
                            settings.broker_url)
        calls = build_pacer(Rate(settings.twilio_cps, 1), settings.broker_url, "calls")
        out["sms"] = TwilioSmsSender(gateway, settings.public_url, texts, validity)
        out["voice"] = TwilioVoiceSender(gateway, settings.public_url, calls, validity)
    if settings.email_sender == "smtp":
        out["email"] = SmtpEmailSender.from_settings(settings)
    return out
