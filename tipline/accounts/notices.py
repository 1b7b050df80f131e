"""Emails to a staff member about their own account (a reset, a password change).

They go through the alert email sender (``tipline.routing.senders``: SMTP, or the outbox
table in the demo and tests) and never carry a secret: a reset notice tells the holder who
reset the account and whom to call if they did not expect it, not the new password. The
caller sends after its transaction committed, so nobody is told about a change that rolled
back; a failed send is logged and reported, and never undoes the change.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tipline.accounts.models import Role, StaffUser
from tipline.accounts.services import ONE_TIME_HOURS
from tipline.routing.senders import Alert, AlertSender, SendError

log = logging.getLogger(__name__)

# Not an alert delivery: the outbox stores no delivery id for it.
NO_DELIVERY = 0


def district_admins(session: Session, user: StaffUser, exclude: int | None = None) -> list[str]:
    """Whom the holder can turn to: the active administrators of their district."""
    if user.district_id is None:
        return []
    return list(session.execute(
        select(StaffUser.email).where(
            StaffUser.role == Role.DISTRICT_ADMIN.value, StaffUser.active.is_(True),
            StaffUser.district_id == user.district_id, StaffUser.id != user.id,
            StaffUser.id != (exclude or 0))
        .order_by(StaffUser.email)
    ).scalars())


def _whom(contacts: list[str]) -> str:
    if not contacts:
        return "your district's technology or security office"
    return "another administrator of your district (" + ", ".join(contacts[:5]) + ")"


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def credentials_reset(user: StaffUser, by: str, contacts: list[str], at: datetime) -> Alert:
    """The notice for an administrator's (or the command line's) reset."""
    text = (
        f"Your tipline staff account {user.email} was reset by {by} on {_when(at)}.\n\n"
        "Your old password and authenticator no longer work, and every session of the "
        "account has ended. Whoever reset it has a one-time password for you (it is not in "
        "this email). At your next sign-in you set up your authenticator app again and choose "
        f"your own password. The one-time password stops working after {ONE_TIME_HOURS} hours."
        "\n\n"
        f"If you did not expect this, contact {_whom(contacts)} at once: someone may be "
        "trying to use your account.\n"
    )
    return Alert(channel="email", recipient=user.email,
                 subject="Your tipline credentials were reset", text=text,
                 delivery_id=NO_DELIVERY)


def password_changed(user: StaffUser, contacts: list[str], at: datetime) -> Alert:
    """The notice for a password change by the holder (so a change they did not make is
    noticed)."""
    text = (
        f"The password of your tipline staff account {user.email} was changed on "
        f"{_when(at)}, and every other session of the account has ended.\n\n"
        f"If this was not you, contact {_whom(contacts)} at once and ask them to reset "
        "your account.\n"
    )
    return Alert(channel="email", recipient=user.email,
                 subject="Your tipline password was changed", text=text,
                 delivery_id=NO_DELIVERY)


def deliver(session: Session, sender: AlertSender, notice: Alert) -> bool:
    """Send one notice; False (logged without the address) if the sender failed. The outbox
    sender adds a row to ``session``: the caller commits."""
    try:
        sender.send(session, notice)
    except SendError as exc:
        log.warning("account notice not sent: %s", exc)
        return False
    return True
