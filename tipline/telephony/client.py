"""The one interface to Twilio's REST API: a real gateway (the ``twilio`` SDK) and a fake.

Everything that talks to Twilio (SMS replies and relays, alert calls, fetching media and
recordings, deleting what Twilio keeps) goes through ``TwilioGateway`` so that workers can be
tested against the in-memory fake or against a local mock of the REST API (``api_base``).
Failures are split into transient ones (worth retrying: 5xx, 429, timeouts, connection errors)
and permanent ones (other 4xx), because a worker must know whether to try again.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from tipline.ops import metrics
from tipline.settings import Settings

log = logging.getLogger(__name__)

# The SDK logs every request line at INFO; the URLs carry SIDs only, but keep it quiet anyway.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

REQUEST_TIMEOUT_SECONDS = 10.0
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024


class TwilioError(Exception):
    """A Twilio API call failed."""


class TwilioTransientError(TwilioError):
    """Worth retrying later: 5xx, 429, timeout, connection error.

    ``unknown_outcome``: the request may have reached Twilio and been acted on (no answer in
    time, or the connection dropped after the request went out). Before sending such a
    request again, ask Twilio whether it has it (``find_messages`` / ``find_calls``).
    """

    def __init__(self, message: str, unknown_outcome: bool = False) -> None:
        super().__init__(message)
        self.unknown_outcome = unknown_outcome


@dataclass(frozen=True)
class SentRecord:
    """What Twilio keeps of a message or call we sent: enough to recognise it again."""

    sid: str
    created: datetime | None
    status: str
    body: str | None = None


class TwilioPermanentError(TwilioError):
    """Will not succeed by retrying (other 4xx). ``code`` is Twilio's error code when known."""

    def __init__(self, message: str, code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class TwilioGateway(Protocol):
    name: str

    def send_sms(self, to: str, body: str, *, status_callback: str | None = None,
                 validity_period: int | None = None) -> str:
        """Send a text from the tip line's number (or its Messaging Service); return the
        Message SID. ``validity_period``: seconds it may wait in Twilio's queue before it
        fails instead of arriving late."""
        ...

    def start_call(self, to: str, *, url: str | None = None, twiml: str | None = None,
                   status_callback: str | None = None) -> str:
        """Place a call from the tip line's number; return the Call SID."""
        ...

    def delete_call(self, sid: str) -> None:
        """Delete Twilio's record of a finished call (already gone counts as done)."""
        ...

    def find_messages(self, to: str) -> list[SentRecord]:
        """The newest messages Twilio has from the tip line's number to ``to``."""
        ...

    def find_calls(self, to: str) -> list[SentRecord]:
        """The newest calls Twilio has from the tip line's number to ``to``."""
        ...

    def redact_message(self, sid: str) -> None:
        """Blank the body Twilio keeps for a message."""
        ...

    def delete_message(self, sid: str) -> None:
        """Delete Twilio's record of a message (already gone counts as done)."""
        ...

    def fetch_media(self, url: str) -> tuple[bytes, str]:
        """Download an MMS media item with the account's credentials: (bytes, content type)."""
        ...

    def delete_media(self, message_sid: str, media_sid: str) -> None:
        """Delete an MMS media item from Twilio (already gone counts as done)."""
        ...

    def fetch_recording(self, url: str) -> tuple[bytes, str]:
        """Download a call recording (``RecordingUrl``): (bytes, content type)."""
        ...

    def delete_recording(self, sid: str) -> None:
        """Delete a recording from Twilio (already gone counts as done)."""
        ...

    def delete_transcription(self, sid: str) -> None:
        """Delete a transcription from Twilio (already gone counts as done)."""
        ...


def _is_twilio_api_host(host: str) -> bool:
    return host == "api.twilio.com" or (host.startswith("api.") and host.endswith(".twilio.com"))


def _rebase(url: str, api_base: str) -> str:
    """Send an api.twilio.com URL to ``api_base`` (a local mock); leave other URLs alone."""
    if not api_base:
        return url
    parts = urlsplit(url)
    if not _is_twilio_api_host(parts.hostname or ""):
        return url
    base = urlsplit(api_base)
    path = base.path.rstrip("/") + parts.path
    return urlunsplit((base.scheme, base.netloc, path, parts.query, ""))


# Keep-alive connections to Twilio per worker process. The SDK keeps min(32, CPUs + 4); a
# worker runs more sending threads than that in a surge (each waits on Twilio's answer), and
# every send beyond the pool would open a new TLS connection.
KEEP_CONNECTIONS = 64
TWILIO_API_URL = "https://api.twilio.com"


def _settle_session(client: TwilioHttpClient, api_url: str) -> None:
    """Size the SDK's connection pool, and read proxy and CA settings from the environment
    once instead of on every request (``requests`` re-reads them per call when it trusts the
    environment: about a third of an alert's CPU in the SDK)."""
    session = client.session
    if session is None:
        return
    adapter = HTTPAdapter(pool_maxsize=KEEP_CONNECTIONS)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    proxies = requests.utils.get_environ_proxies(api_url)
    if proxies and not client.proxy:
        client.proxy = proxies
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if ca_bundle:
        session.verify = ca_bundle
    session.trust_env = False


class _RebasingHttpClient(HttpClient):
    """Wraps an SDK ``HttpClient`` and points api.twilio.com requests at ``api_base``."""

    def __init__(self, inner: HttpClient, api_base: str) -> None:
        super().__init__(inner.logger, False, inner.timeout)
        self.inner = inner
        self.api_base = api_base

    def request(self, method: str, uri: str, params: dict[str, object] | None = None,
                data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                auth: tuple[str, str] | None = None, timeout: float | None = None,
                allow_redirects: bool = False) -> Response:
        return self.inner.request(method, _rebase(uri, self.api_base), params=params, data=data,
                                  headers=headers, auth=auth, timeout=timeout,
                                  allow_redirects=allow_redirects)


def _maybe_received(exc: Exception) -> bool:
    """Whether a failed request may have reached Twilio: no answer in time, or a connection
    that broke after it was open. A refused or timed-out connect never sent anything."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.Timeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = repr(exc.args[0]) if exc.args else ""
        return not any(k in reason for k in ("NewConnectionError", "NameResolutionError",
                                             "ConnectTimeoutError"))
    return isinstance(exc, OSError)


# How many of the newest messages/calls to one number a lookup reads: a recovery asks within
# a minute of the send, and alerts to one contact are far fewer than this per minute.
LOOKUP_LIMIT = 50


def _translate(exc: Exception, what: str) -> TwilioError:
    """Map SDK/HTTP failures to the transient/permanent split the workers act on."""
    if isinstance(exc, TwilioRestException):
        status = int(exc.status or 0)
        raw = str(exc.code) if exc.code is not None else ""
        code = int(raw) if raw.isdigit() else None
        metrics.twilio_error(code, status)
        message = f"{what}: Twilio answered HTTP {status}" + (f" (error {code})" if code else "")
        if status == 429 or status >= 500 or status == 0:
            return TwilioTransientError(message)
        return TwilioPermanentError(message, code=code, status=status)
    if isinstance(exc, requests.RequestException | OSError):
        return TwilioTransientError(f"{what}: {type(exc).__name__}",
                                    unknown_outcome=_maybe_received(exc))
    if isinstance(exc, TwilioException):
        return TwilioTransientError(f"{what}: {type(exc).__name__}")
    return TwilioTransientError(f"{what}: unexpected {type(exc).__name__}")


class RestTwilioGateway:
    """The real gateway: the ``twilio`` SDK for API calls, ``requests`` for binary downloads.

    The SDK's ``HttpClient`` returns text, not bytes, so media and recordings are downloaded
    with a plain ``requests`` session using the same basic auth; a redirect to Twilio's storage
    host drops the credentials (``requests`` strips Authorization on a cross-host redirect).
    """

    name = "twilio"

    def __init__(self, account_sid: str, auth_token: str, from_number: str, api_base: str = "",
                 http_client: HttpClient | None = None, *, messaging_service_sid: str = "",
                 voice_from_number: str = "") -> None:
        self.account_sid = account_sid
        self.from_number = from_number
        # Texts go through the Messaging Service when there is one: Twilio picks the sender
        # from its pool, and its sticky sender keeps a reporter's conversation on one number.
        self.messaging_service_sid = messaging_service_sid
        self.voice_from_number = voice_from_number or from_number
        self.api_base = api_base.rstrip("/")
        self._auth = (account_sid, auth_token)
        if http_client is None:
            http_client = TwilioHttpClient(timeout=REQUEST_TIMEOUT_SECONDS)
            _settle_session(http_client, self.api_base or TWILIO_API_URL)
        inner = http_client
        client_http: HttpClient = _RebasingHttpClient(inner, self.api_base) if self.api_base \
            else inner
        self.client = Client(account_sid, auth_token, http_client=client_http)
        self._downloads = requests.Session()

    # -- messages -------------------------------------------------------------------------
    def send_sms(self, to: str, body: str, *, status_callback: str | None = None,
                 validity_period: int | None = None) -> str:
        kwargs: dict[str, Any] = {"to": to, "body": body}
        if self.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.messaging_service_sid
        else:
            kwargs["from_"] = self.from_number
        if status_callback:
            kwargs["status_callback"] = status_callback
        if validity_period:
            kwargs["validity_period"] = max(1, min(36000, int(validity_period)))
        try:
            msg = self.client.messages.create(**kwargs)
        except Exception as exc:
            raise _translate(exc, "send_sms") from None
        return str(msg.sid)

    def find_messages(self, to: str) -> list[SentRecord]:
        # Through a Messaging Service any number of its pool may have sent it: ask by To only.
        sender = None if self.messaging_service_sid else self.from_number
        return self._find(self.client.messages, to, sender, "find_messages")

    def find_calls(self, to: str) -> list[SentRecord]:
        return self._find(self.client.calls, to, self.voice_from_number, "find_calls")

    def _find(self, resource: Any, to: str, sender: str | None, what: str) -> list[SentRecord]:
        try:
            kwargs: dict[str, Any] = {"to": to, "limit": LOOKUP_LIMIT,
                                      "page_size": LOOKUP_LIMIT}
            if sender:
                kwargs["from_"] = sender
            found = resource.list(**kwargs)
        except Exception as exc:
            raise _translate(exc, what) from None
        return [SentRecord(str(r.sid), r.date_created, str(r.status or ""),
                           getattr(r, "body", None)) for r in found]

    def redact_message(self, sid: str) -> None:
        try:
            self.client.messages(sid).update(body="")
        except Exception as exc:
            raise _translate(exc, "redact_message") from None

    def delete_message(self, sid: str) -> None:
        self._delete(lambda: self.client.messages(sid).delete(), "delete_message")

    def fetch_media(self, url: str) -> tuple[bytes, str]:
        return self._download(url, "fetch_media")

    def delete_media(self, message_sid: str, media_sid: str) -> None:
        self._delete(lambda: self.client.messages(message_sid).media(media_sid).delete(),
                     "delete_media")

    # -- calls ----------------------------------------------------------------------------
    def start_call(self, to: str, *, url: str | None = None, twiml: str | None = None,
                   status_callback: str | None = None) -> str:
        if not url and not twiml:
            raise ValueError("start_call needs url or twiml")
        kwargs: dict[str, Any] = {"to": to, "from_": self.voice_from_number}
        if url:
            kwargs["url"] = url
        if twiml:
            kwargs["twiml"] = twiml
        if status_callback:
            kwargs["status_callback"] = status_callback
            kwargs["status_callback_event"] = ["initiated", "ringing", "answered", "completed"]
        try:
            call = self.client.calls.create(**kwargs)
        except Exception as exc:
            raise _translate(exc, "start_call") from None
        return str(call.sid)

    def fetch_recording(self, url: str) -> tuple[bytes, str]:
        # RecordingUrl has no extension; Twilio then serves WAV. Ask for MP3: a tenth the size.
        parts = urlsplit(url)
        if _is_twilio_api_host(parts.hostname or "") and not parts.path.endswith((".mp3",
                                                                                  ".wav")):
            url = urlunsplit(parts._replace(path=parts.path + ".mp3"))
        return self._download(url, "fetch_recording")

    def delete_call(self, sid: str) -> None:
        self._delete(lambda: self.client.calls(sid).delete(), "delete_call")

    def delete_recording(self, sid: str) -> None:
        self._delete(lambda: self.client.recordings(sid).delete(), "delete_recording")

    def delete_transcription(self, sid: str) -> None:
        self._delete(lambda: self.client.transcriptions(sid).delete(), "delete_transcription")

    # -- helpers --------------------------------------------------------------------------
    def _delete(self, call: Any, what: str) -> None:
        try:
            call()
        except TwilioRestException as exc:
            if exc.status == 404:  # already deleted: the goal is reached
                return
            raise _translate(exc, what) from None
        except Exception as exc:
            raise _translate(exc, what) from None

    def _download(self, url: str, what: str) -> tuple[bytes, str]:
        target = _rebase(url, self.api_base)
        try:
            resp = self._downloads.get(target, auth=self._auth, timeout=REQUEST_TIMEOUT_SECONDS,
                                       allow_redirects=True, stream=True)
            try:
                status = resp.status_code
                if status >= 400:
                    if status == 429 or status >= 500:
                        raise TwilioTransientError(f"{what}: HTTP {status}")
                    raise TwilioPermanentError(f"{what}: HTTP {status}", status=status)
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > MAX_DOWNLOAD_BYTES:
                        raise TwilioPermanentError(f"{what}: larger than {MAX_DOWNLOAD_BYTES}")
                    chunks.append(chunk)
                ctype = resp.headers.get("Content-Type", "application/octet-stream")
            finally:
                resp.close()
        except TwilioError:
            raise
        except Exception as exc:
            raise _translate(exc, what) from None
        return b"".join(chunks), ctype.split(";")[0].strip().lower()


@dataclass
class FakeTwilioGateway:
    """Records what would have been sent or deleted; serves media from ``media``.

    ``fail_next`` makes the next call raise the given exception once (tests of retries).
    """

    name: str = "fake"
    from_number: str = "+15555550100"
    sent: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    redacted: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    fail_next: Exception | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _maybe_fail(self) -> None:
        with self._lock:
            exc, self.fail_next = self.fail_next, None
        if exc is not None:
            raise exc

    def _sid(self, prefix: str) -> str:
        with self._lock:
            n = next(self._ids)
        return f"{prefix}{n:032x}"

    def send_sms(self, to: str, body: str, *, status_callback: str | None = None,
                 validity_period: int | None = None) -> str:
        self._maybe_fail()
        sid = self._sid("SM")
        self.sent.append({"sid": sid, "to": to, "from": self.from_number, "body": body,
                          "status_callback": status_callback, "at": datetime.now(UTC),
                          "validity_period": validity_period})
        return sid

    def find_messages(self, to: str) -> list[SentRecord]:
        self._maybe_fail()
        return [SentRecord(m["sid"], m["at"], "queued", m["body"])
                for m in reversed(self.sent) if m["to"] == to][:LOOKUP_LIMIT]

    def find_calls(self, to: str) -> list[SentRecord]:
        self._maybe_fail()
        return [SentRecord(c["sid"], c["at"], "queued")
                for c in reversed(self.calls) if c["to"] == to][:LOOKUP_LIMIT]

    def start_call(self, to: str, *, url: str | None = None, twiml: str | None = None,
                   status_callback: str | None = None) -> str:
        self._maybe_fail()
        if not url and not twiml:
            raise ValueError("start_call needs url or twiml")
        sid = self._sid("CA")
        self.calls.append({"sid": sid, "to": to, "from": self.from_number, "url": url,
                           "twiml": twiml, "status_callback": status_callback,
                           "at": datetime.now(UTC)})
        return sid

    def delete_call(self, sid: str) -> None:
        self._maybe_fail()
        self.deleted.append(("call", sid))

    def redact_message(self, sid: str) -> None:
        self._maybe_fail()
        self.redacted.append(sid)

    def delete_message(self, sid: str) -> None:
        self._maybe_fail()
        self.deleted.append(("message", sid))

    def fetch_media(self, url: str) -> tuple[bytes, str]:
        self._maybe_fail()
        self.fetched.append(url)
        if url not in self.media:
            raise TwilioPermanentError("fetch_media: HTTP 404", status=404)
        return self.media[url]

    def delete_media(self, message_sid: str, media_sid: str) -> None:
        self._maybe_fail()
        self.deleted.append(("media", f"{message_sid}/{media_sid}"))

    def fetch_recording(self, url: str) -> tuple[bytes, str]:
        self._maybe_fail()
        self.fetched.append(url)
        if url not in self.media:
            raise TwilioPermanentError("fetch_recording: HTTP 404", status=404)
        return self.media[url]

    def delete_recording(self, sid: str) -> None:
        self._maybe_fail()
        self.deleted.append(("recording", sid))

    def delete_transcription(self, sid: str) -> None:
        self._maybe_fail()
        self.deleted.append(("transcription", sid))


def twilio_configured(settings: Settings) -> bool:
    return bool(settings.twilio_account_sid and settings.twilio_auth_token
                and settings.twilio_from_number)


def build_gateway(settings: Settings) -> TwilioGateway:
    """The real gateway when the account SID, auth token and from-number are set, else the fake."""
    if twilio_configured(settings):
        return RestTwilioGateway(settings.twilio_account_sid, settings.twilio_auth_token,
                                 settings.twilio_from_number, api_base=settings.twilio_api_base,
                                 messaging_service_sid=settings.twilio_messaging_service_sid,
                                 voice_from_number=settings.twilio_voice_from_number)
    return FakeTwilioGateway(from_number=settings.twilio_from_number or "+15555550100")
