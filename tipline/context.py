"""The per-process services the app, the workers and the CLI share.

Built once by ``build_services(settings)``; stored on the Flask app as
``app.extensions["tipline"]``. Views and tasks take what they need from it and pass it to
service functions explicitly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from tipline import crypto
from tipline.db import Database
from tipline.jobs import JobQueue
from tipline.settings import Settings

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from tipline.routing.senders import AlertSender
    from tipline.routing.services import Planner


@dataclass
class Services:
    settings: Settings
    db: Database
    vault: crypto.Vault
    queue: JobQueue
    celery: Any = None
    sender_factory: Callable[[Settings], dict[str, AlertSender]] | None = None
    planner_factory: Callable[[Session], Planner] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def senders(self) -> dict[str, AlertSender]:
        """The alert sender per channel, built once per process (settings.alert_sender and
        settings.email_sender choose Twilio/SMTP or the outbox)."""
        if self.sender_factory is not None:
            return self.sender_factory(self.settings)
        cached: dict[str, AlertSender] | None = self.extra.get("senders")
        if cached is None:
            from tipline.routing.senders import build_senders

            cached = build_senders(self.settings)
            self.extra["senders"] = cached
        return cached

    def planner(self, session: Session) -> Planner:
        if self.planner_factory is not None:
            return self.planner_factory(session)
        from tipline.routing.services import DirectoryPlanner

        try:
            from tipline.routing.engine import PolicyPlanner
            from tipline.routing.policy import active_policy

            policy = active_policy(session)
        except Exception:  # a broken policy row must not stop routing: directory fallback
            log.exception("routing policy unavailable; using the directory default")
            policy = None
        return PolicyPlanner(policy) if policy is not None else DirectoryPlanner()
