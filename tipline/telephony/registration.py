"""Whether the sending numbers may carry application-to-person texts in the US, asked of Twilio.

US carriers filter A2P texts from numbers that are not registered: a local (10DLC) number must
belong to a Messaging Service with an approved A2P campaign, a toll-free number needs an
approved toll-free verification. ``tipline twilio check`` reads both through Twilio's
Messaging v1 API (``messaging.twilio.com``) and says what is missing, and compares the
Messaging Service's sender pool with the pacing settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from tipline.settings import Settings

# North American toll-free area codes.
TOLL_FREE = ("800", "833", "844", "855", "866", "877", "888")
# A 10DLC campaign that carriers accept ("IN_PROGRESS", "PENDING", "FAILED"... do not).
CAMPAIGN_OK = {"VERIFIED"}
TOLL_FREE_OK = {"TWILIO_APPROVED"}


def is_toll_free(number: str) -> bool:
    return number.startswith("+1") and number[2:5] in TOLL_FREE


@dataclass
class Registration:
    """What Twilio says, as lines to print, and the problems that stop texts arriving."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class _ToMock(HttpClient):
    """Points every *.twilio.com request at a local mock (tests: Prism of the v1 contract)."""

    def __init__(self, inner: HttpClient, base: str) -> None:
        super().__init__(inner.logger, False, inner.timeout)
        self.inner = inner
        self.base = urlsplit(base)

    def request(self, method: str, uri: str, params: dict[str, object] | None = None,
                data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                auth: tuple[str, str] | None = None, timeout: float | None = None,
                allow_redirects: bool = False) -> Response:
        parts = urlsplit(uri)
        if (parts.hostname or "").endswith(".twilio.com"):
            uri = urlunsplit((self.base.scheme, self.base.netloc,
                              self.base.path.rstrip("/") + parts.path, parts.query, ""))
        return self.inner.request(method, uri, params=params, data=data, headers=headers,
                                  auth=auth, timeout=timeout, allow_redirects=allow_redirects)


def messaging_client(settings: Settings, api_base: str = "",
                     http_client: HttpClient | None = None) -> Client:
    """An SDK client for the Messaging v1 API (``api_base``: a local mock, tests only)."""
    inner = http_client or TwilioHttpClient(timeout=10.0)
    http = _ToMock(inner, api_base) if api_base else inner
    return Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=http)


def check_registration(settings: Settings, client: Client) -> Registration:
    """Read the Messaging Service (pool, sticky sender, A2P campaign) and the toll-free
    verifications, and compare them with the settings. Raises the SDK's errors."""
    out = Registration()
    number = settings.twilio_from_number
    service_sid = settings.twilio_messaging_service_sid
    pool: list[str] = []
    if service_sid:
        svc = client.messaging.v1.services(service_sid)
        info = svc.fetch()
        pool = [str(p.phone_number) for p in svc.phone_numbers.list(limit=400)]
        out.lines.append(f"Messaging Service {service_sid} ({info.friendly_name}): "
                         f"{len(pool)} number(s) in its sender pool, sticky sender "
                         f"{'on' if info.sticky_sender else 'OFF'}")
        if not info.sticky_sender:
            out.problems.append("the Messaging Service's Sticky Sender is off: a reporter's "
                                "replies could come from different numbers (turn it on under "
                                "Messaging > Services > Sender Pool)")
        if len(pool) != settings.twilio_senders:
            out.problems.append(f"TIPLINE_TWILIO_SENDERS={settings.twilio_senders} but the "
                                f"Messaging Service has {len(pool)} number(s): tipline paces "
                                f"alert texts to the senders it is told about")
        if number and pool and number not in pool:
            out.problems.append(f"TIPLINE_TWILIO_FROM_NUMBER {number} is not in the Messaging "
                                f"Service's sender pool")
    elif settings.twilio_senders > 1:
        out.problems.append("TIPLINE_TWILIO_SENDERS is above 1 without "
                            "TIPLINE_TWILIO_MESSAGING_SERVICE_SID: texts go from one number")
    local = [n for n in (pool or [number]) if n and not is_toll_free(n)]
    toll_free = [n for n in (pool or [number]) if n and is_toll_free(n)]
    if local:
        _check_campaign(out, client, service_sid, local)
    if toll_free:
        _check_toll_free(out, client, toll_free)
    return out


def _check_campaign(out: Registration, client: Client, service_sid: str,
                    local: list[str]) -> None:
    if not service_sid:
        out.problems.append(f"{local[0]} is a US local number: carriers deliver its texts only "
                            "with an A2P 10DLC campaign, which belongs to a Messaging Service; "
                            "set TIPLINE_TWILIO_MESSAGING_SERVICE_SID (docs/twilio.md, "
                            "Registration)")
        return
    campaigns = list(client.messaging.v1.services(service_sid).us_app_to_person.list(limit=20))
    if not campaigns:
        out.problems.append("the Messaging Service has no A2P 10DLC campaign: its local numbers' "
                            "texts will be filtered (docs/twilio.md, Registration)")
        return
    for c in campaigns:
        out.lines.append(f"A2P 10DLC campaign {c.sid}: use case {c.us_app_to_person_usecase}, "
                         f"status {c.campaign_status}")
    if not any(str(c.campaign_status or "").upper() in CAMPAIGN_OK for c in campaigns):
        states = ", ".join(sorted({str(c.campaign_status) for c in campaigns}))
        out.problems.append(f"no A2P 10DLC campaign of the Messaging Service is approved "
                            f"(status: {states}); until one is VERIFIED carriers may filter "
                            f"every text from its {len(local)} local number(s)")


def _check_toll_free(out: Registration, client: Client, numbers: list[str]) -> None:
    found: dict[str, Any] = {}
    for v in client.messaging.v1.tollfree_verifications.list(limit=200):
        found.setdefault(str(v.tollfree_phone_number), v)
    for n in numbers:
        v = found.get(n)
        if v is None:
            out.problems.append(f"toll-free number {n} has no toll-free verification: its texts "
                                "will be blocked until one is approved (docs/twilio.md)")
            continue
        out.lines.append(f"toll-free verification for {n}: {v.status}")
        if str(v.status) not in TOLL_FREE_OK:
            reason = f" ({v.rejection_reason})" if getattr(v, "rejection_reason", None) else ""
            out.problems.append(f"toll-free number {n}: verification is {v.status}{reason}, not "
                                "TWILIO_APPROVED")
