"""The per-process services the app, the workers and the CLI share.

Built once by ``build_services(settings)``; stored on the Flask app as
``app.extensions["tipline"]``. Views and tasks take what they need from it and pass it to
service functions explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from tipline import crypto
from tipline.db import Database
from tipline.jobs import JobQueue
from tipline.settings import Settings

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
        if self.sender_factory is not None:
            return self.sender_factory(self.settings)
        from tipline.routing.senders import OutboxSender

        outbox = OutboxSender()
        return {"sms": outbox, "voice": outbox, "email": outbox}

    def planner(self, session: Session) -> Planner:
        if self.planner_factory is not None:
            return self.planner_factory(session)
        from tipline.routing.services import DirectoryPlanner

        return DirectoryPlanner()
