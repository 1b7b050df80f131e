"""``tipline audit verify``: check the whole audit log's hash chain (for cron or by hand).

The dashboard checks the newest entries on every view; this walks all of them and exits 1 at
the first broken link, naming the entry, so a nightly job can alert someone.
"""

from __future__ import annotations

import sys

import click


@click.group("audit")
def audit_group() -> None:
    """The append-only audit log."""


@audit_group.command("verify")
def audit_verify() -> None:
    """Recompute every entry's hash; exit 1 at the first one that does not match."""
    from tipline.admin.services import verify_log
    from tipline.audit.services import record
    from tipline.cli import database_session

    with database_session() as session:
        report = verify_log(session).report
        record(session, "audit.verify", actor="cli",
               detail={"ok": report.ok, "checked": report.checked,
                       "first_bad_id": report.first_bad_id})
    if report.ok:
        click.echo(f"audit log OK: {report.checked} entries verified")
        return
    click.echo(f"audit log BROKEN at entry {report.first_bad_id}: {report.reason} "
               f"({report.checked} entries before it verified)", err=True)
    sys.exit(1)


def register(main: click.Group) -> None:
    existing = main.commands.get("audit")
    if isinstance(existing, click.Group):
        existing.add_command(audit_verify)
    else:
        main.add_command(audit_group)
