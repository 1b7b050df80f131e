"""Account recovery from the command line, for when no administrator can sign in.

``tipline users reset-totp EMAIL`` (a lost phone: the next sign-in enrols again) and
``tipline users unlock EMAIL`` (an account paused after failed sign-ins). Both end the
account's sessions and are audited as the CLI.
"""

from __future__ import annotations

import click


def _change(email: str, what: str) -> None:
    from tipline.accounts import services as accounts
    from tipline.app import build_services
    from tipline.audit.services import record
    from tipline.cli import _die, _settings, fail_cleanly

    with fail_cleanly():
        svc = build_services(_settings())
        with svc.db.session() as session:
            user = accounts.find_user(session, email)
            if user is None:
                _die(f"no account {email.strip().lower()!r}")
                return
            if what == "reset-totp":
                accounts.reset_totp(user)
            else:
                user.locked_until = None
                user.failed_logins = 0
                accounts.sign_out_everywhere(user)
            record(session, f"user.{what.replace('-', '_')}", actor="cli",
                   object_type="staff_user", object_id=user.id)
    click.echo(f"{email}: done ({what}); the account's sessions have ended")


def register(main: click.Group) -> None:
    users = main.commands.get("users")
    if not isinstance(users, click.Group):
        return

    @users.command("reset-totp")
    @click.argument("email")
    def reset_totp(email: str) -> None:
        """Forget an account's authenticator; the next sign-in enrols a new one."""
        _change(email, "reset-totp")

    @users.command("unlock")
    @click.argument("email")
    def unlock(email: str) -> None:
        """Lift the pause after too many failed sign-ins."""
        _change(email, "unlock")
