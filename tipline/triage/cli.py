"""Account recovery from the command line, for when no administrator can sign in.

``tipline users reset EMAIL`` (a forgotten password or a lost phone: a new one-time password,
printed once; the next sign-in enrols an authenticator and chooses a password) and
``tipline users unlock EMAIL`` (an account paused after failed sign-ins). Both end the
account's sessions and are audited as the CLI; a reset emails the holder a notice.
"""

from __future__ import annotations

import click


def _change(email: str, what: str) -> None:
    from tipline.accounts import notices
    from tipline.accounts import services as accounts
    from tipline.app import build_services
    from tipline.audit.services import record
    from tipline.cli import _die, _settings, fail_cleanly
    from tipline.db import utcnow

    password = None
    with fail_cleanly():
        svc = build_services(_settings())
        with svc.db.session() as session:
            user = accounts.find_user(session, email)
            if user is None:
                _die(f"no account {email.strip().lower()!r}")
                return
            now = utcnow()
            notice = None
            if what == "reset":
                password = accounts.reset_credentials(user, now=now)
                record(session, "user.reset_credentials", actor="cli",
                       object_type="staff_user", object_id=user.id,
                       detail={"valid_hours": accounts.ONE_TIME_HOURS})
                notice = notices.credentials_reset(
                    user, "the server operator (tipline command line)",
                    notices.district_admins(session, user), now)
            else:
                user.locked_until = None
                user.failed_logins = 0
                accounts.sign_out_everywhere(user)
                record(session, f"user.{what}", actor="cli", object_type="staff_user",
                       object_id=user.id)
        if notice is not None:  # after the reset committed
            with svc.db.session() as session:
                told = notices.deliver(session, svc.senders()["email"], notice)
            if not told:
                click.echo("the email notice could not be sent: tell the holder yourself",
                           err=True)
    click.echo(f"{email}: done ({what}); the account's sessions have ended")
    if password is not None:
        click.echo(f"one-time password: {password}")
        click.echo("shown only now; it works for one sign-in within "
                   f"{accounts.ONE_TIME_HOURS} hours, which sets "
                   "up the authenticator and a new password")


def register(main: click.Group) -> None:
    users = main.commands.get("users")
    if not isinstance(users, click.Group):
        return

    @users.command("reset")
    @click.argument("email")
    def reset(email: str) -> None:
        """New one-time password (printed once); authenticator and password set again at the
        next sign-in."""
        _change(email, "reset")

    @users.command("unlock")
    @click.argument("email")
    def unlock(email: str) -> None:
        """Lift the pause after too many failed sign-ins."""
        _change(email, "unlock")
