"""The ``tipline`` command: run the embedded default, migrate, manage keys, users and demo data.

Every command fails with one clear line (``tipline: error: ...``) and exit status 2 on bad
configuration, a missing key file or an unreachable database, never with a traceback.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NoReturn

import click
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from tipline.crypto import (
    SEALED_ONLY,
    KeyFileError,
    KeyRing,
    Vault,
    load_key_file,
    write_key_file,
)
from tipline.ops.release import __version__
from tipline.settings import Settings, SettingsError, load_settings


@contextmanager
def fail_cleanly() -> Iterator[None]:
    """Turn start-up failures into one line on stderr and exit status 2."""
    try:
        yield
    except (SettingsError, KeyFileError) as exc:
        _die(str(exc))
    except OperationalError as exc:
        _die(f"database unreachable: {_first_line(exc.orig or exc)}")
    except SQLAlchemyError as exc:
        _die(f"database error: {_first_line(exc)}")


def _first_line(exc: object) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


def _die(message: str) -> NoReturn:
    click.echo(f"tipline: error: {message}", err=True)
    sys.exit(2)


def _settings(**env_overrides: str) -> Settings:
    env = dict(os.environ)
    env.update({k: v for k, v in env_overrides.items() if v is not None})
    return load_settings(env)


def check_database(settings: Settings) -> None:
    from tipline.db import make_engine

    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


@contextmanager
def database_session() -> Iterator[Any]:
    """A committing session on the configured database, for plug-in commands: settings and
    database problems end the command with one clear line, as everywhere in the CLI."""
    from tipline.db import Database

    with fail_cleanly():
        settings = _settings()
        check_database(settings)
        db = Database(settings.database_url)
        try:
            with db.session() as session:
                yield session
        finally:
            db.dispose()


@click.group()
@click.version_option(__version__, prog_name="tipline", message="%(prog)s %(version)s")
def main() -> None:
    """tipline: an anonymous safe-schools tip line."""


# -- run (embedded default) ----------------------------------------------------------------
@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--data-dir", default=None, help="Where the database, keys and queue live [var].")
@click.option("--demo/--no-demo", default=True, show_default=True, help="Load the St. Louis demo.")
@click.option("--worker/--no-worker", default=True, show_default=True)
def run(host: str, port: int, data_dir: str | None, demo: bool, worker: bool) -> None:
    """Run everything in one command: web, worker and scheduler, SQLite, no services."""
    overrides: dict[str, str] = {}
    if data_dir:
        overrides["TIPLINE_DATA_DIR"] = data_dir
    if "TIPLINE_PUBLIC_URL" not in os.environ:
        overrides["TIPLINE_PUBLIC_URL"] = f"http://{host}:{port}"
    with fail_cleanly():
        settings = _settings(**overrides)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        from tipline import migrations
        from tipline.app import create_app

        check_database(settings)
        migrations.upgrade(settings.database_url)
        app = create_app(settings)
        svc = app.extensions["tipline"]
        admin = None
        if demo:
            admin = _ensure_demo(svc, settings)
    env = dict(os.environ)
    env.update(overrides)
    env["TIPLINE_DATA_DIR"] = str(settings.data_dir)
    children = _Children()
    children.stop_on_signals()  # before the first child exists: none may outlive us
    try:
        if worker:
            children.add(_spawn_worker(settings, env))
            children.restart_when_exited(lambda: _spawn_worker(settings, env))
        click.echo("")
        click.echo(f"tipline is running: open {settings.public_url}/")
        click.echo(f"  data directory: {settings.data_dir.resolve()}")
        click.echo(f"  key file:       {settings.key_file.resolve()} (back it up; keep it secret)")
        if admin:
            click.echo(f"  dashboard:      {settings.public_url}/staff/")
            click.echo(f"  demo admin:     {admin[0]}  one-time password: {admin[1]}")
            click.echo("                  (the first sign-in sets up an authenticator app and "
                       "your own password)")
        click.echo("  alerts go to the outbox (no SMS, calls or email are sent): "
                   f"`tipline outbox --data-dir {settings.data_dir}`")
        click.echo("Press Ctrl+C to stop.")
        _serve(app, host, port)
    except KeyboardInterrupt:
        pass
    finally:
        children.stop()


def _spawn_worker(settings: Settings, env: dict[str, str]) -> subprocess.Popen[bytes]:
    schedule = settings.data_dir / "beat-schedule"
    cmd = [
        sys.executable, "-m", "celery", "--quiet", "-A", "workers.celery_app", "worker",
        "--beat", "--schedule", str(schedule), "--pool", "threads", "--concurrency", "4",
        "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]
    return subprocess.Popen(cmd, env=env, start_new_session=True)  # noqa: S603


# How long `tipline run` lets the worker (and web requests in flight) finish after SIGTERM or
# Ctrl+C before it kills them: everything must be gone within 5 s, as service managers and
# people expect. Cutting a task short loses nothing: tasks are idempotent and the sweep
# re-routes a tip whose routing did not finish.
STOP_GRACE_SECONDS = 3.0
# How often `tipline run` checks that its worker is still running (and restarts it if not).
WORKER_CHECK_SECONDS = 1.0
WEB_DRAIN_SECONDS = 2.0


class _Children:
    """The processes `tipline run` started, each leading its own process group (the worker's
    embedded scheduler is in the worker's group), stopped together and promptly."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []
        self._deadline: float | None = None

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        self._procs.append(proc)
        if self._deadline is not None:  # a signal came while it was starting
            self._signal(proc, signal.SIGTERM)

    def restart_when_exited(self, spawn: Callable[[], subprocess.Popen[bytes]],
                            every: float = WORKER_CHECK_SECONDS) -> None:
        """Start the worker again whenever it exits on its own (killed, or Celery giving up
        on the broker), as ``restart: unless-stopped`` does in docker-compose.yml; never
        once stopping has begun."""

        def watch() -> None:
            while self._deadline is None:
                time.sleep(every)
                for proc in list(self._procs):
                    if proc.poll() is None or self._deadline is not None:
                        continue
                    click.echo(f"tipline: the worker exited ({proc.returncode}); restarting it",
                               err=True)
                    self._signal(proc, signal.SIGKILL)  # what is left of its group
                    self._procs.remove(proc)
                    self.add(spawn())

        threading.Thread(target=watch, name="tipline-worker-watch", daemon=True).start()

    def stop_on_signals(self) -> None:
        """SIGTERM and Ctrl+C start the children's warm shutdown at once, then leave the web
        server's loop (the rest is ``stop``, called on the way out)."""

        def _on_signal(_signum: int, _frame: Any) -> None:
            if self._deadline is not None:
                return  # already stopping; a second Ctrl+C must not cut the clean-up short
            self.terminate()
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)

    def terminate(self) -> None:
        if self._deadline is None:
            self._deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in self._procs:
            self._signal(proc, signal.SIGTERM)

    def stop(self) -> None:
        """Ask, wait until the grace period ends, then kill whatever is left of each group."""
        self.terminate()
        deadline = self._deadline or time.monotonic()
        for proc in self._procs:
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for proc in self._procs:
            self._signal(proc, signal.SIGKILL)  # also a leftover of a group whose leader exited
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                click.echo(f"tipline: process {proc.pid} did not stop", err=True)

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
        with suppress(ProcessLookupError, PermissionError):  # the whole group is gone
            os.killpg(proc.pid, sig)


def _serve(app: Any, host: str, port: int) -> None:
    """Serve until a signal; web requests in flight get WEB_DRAIN_SECONDS to finish (waitress
    would wait 5 s)."""
    from waitress.server import create_server
    from waitress.task import ThreadedTaskDispatcher

    class _Dispatcher(ThreadedTaskDispatcher):
        def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
            return bool(super().shutdown(cancel_pending, min(timeout, WEB_DRAIN_SECONDS)))

    dispatcher = _Dispatcher()
    dispatcher.set_thread_count(8)
    server = create_server(app, host=host, port=port, threads=8, ident="tipline",
                           _dispatcher=dispatcher)
    server.run()  # returns after KeyboardInterrupt/SystemExit, its threads shut down


def _ensure_demo(svc: Any, settings: Settings) -> tuple[str, str] | None:
    """Load the demo directory once and make a demo admin; returns its credentials if new."""
    from tipline.accounts.models import StaffUser
    from tipline.accounts.services import create_user
    from tipline.directory.loader import load_directory_file
    from tipline.directory.models import District

    demo_file = _demo_path("directory.demo.yaml")
    with svc.db.session() as session:
        if session.execute(select(func.count(District.id))).scalar_one() == 0:
            load_directory_file(session, demo_file)
            _load_demo_policy(session)
        if session.execute(select(func.count(StaffUser.id))).scalar_one() > 0:
            return None
        password = "-".join(secrets.token_urlsafe(6) for _ in range(3))
        create_user(session, svc.vault, email="admin@demo.invalid", password=password,
                    role="district_admin", district_code="slps", display_name="Demo admin")
        return "admin@demo.invalid", password


def _load_demo_policy(session: Any) -> None:
    """Load the demo routing policy when the routing package provides a loader."""
    try:
        from tipline.routing.policy import load_policy_file
    except ModuleNotFoundError:
        return
    load_policy_file(session, _demo_path("policy.demo.yaml"), loaded_by="demo")


def _demo_path(name: str) -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "config" / name, here / "demo" / name):
        if candidate.exists():
            return candidate
    raise click.ClickException(f"demo file {name} not found")


# -- check ---------------------------------------------------------------------------------
@main.command()
def check() -> None:
    """Check settings, key file and database, as the app does at start; exit 2 on a problem."""
    from tipline.keysetup import load_or_create_keyring

    with fail_cleanly():
        settings = _settings()
        if settings.mode == "production" or settings.key_file.exists():
            ring = load_or_create_keyring(settings)
        else:
            ring = None
        check_database(settings)
        from tipline import migrations

        current, heads = migrations.status(settings.database_url)
    click.echo(f"mode: {settings.mode}")
    click.echo(f"key file: {settings.key_file} "
               + (f"(active key {ring.active_id})" if ring else "(created at first run)"))
    schema = "up to date" if current == heads else "NEEDS `tipline db upgrade`"
    click.echo(f"database: reachable; schema {schema}")


# -- worker / scheduler --------------------------------------------------------------------
@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def worker(args: tuple[str, ...]) -> None:
    """Run a Celery worker (production: one or more, beside a scheduler)."""
    os.execvp(sys.executable, [sys.executable, "-m", "celery", "-A", "workers.celery_app",  # noqa: S606
                               "worker", "--loglevel", "INFO", *args])


# -- database ------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (run at every start of a deployment)."""
    from tipline import migrations

    with fail_cleanly():
        settings = _settings()
        if settings.is_sqlite:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        check_database(settings)
        migrations.upgrade(settings.database_url, revision)
    click.echo("database is at the latest revision")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    from tipline import migrations

    with fail_cleanly():
        settings = _settings()
        check_database(settings)
        migrations.downgrade(settings.database_url, revision)


# -- demo / directory ----------------------------------------------------------------------
@main.group()
def directory() -> None:
    """Districts, schools and contacts."""


@directory.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def directory_load(path: Path) -> None:
    """Load or update the directory from a YAML file."""
    from tipline.app import build_services
    from tipline.directory.loader import DirectoryError, load_directory_file

    with fail_cleanly():
        svc = build_services(_settings())
        try:
            with svc.db.session() as session:
                counts = load_directory_file(session, path)
        except DirectoryError as exc:
            _die(str(exc))
    click.echo(", ".join(f"{v} {k}" for k, v in counts.items()))


@main.command()
@click.option("--data-dir", default=None)
@click.option("--limit", default=20, show_default=True)
def outbox(data_dir: str | None, limit: int) -> None:
    """Show the latest alerts recorded by the outbox sender."""
    from tipline.app import build_services
    from tipline.routing.models import OutboxMessage

    with fail_cleanly():
        svc = build_services(_settings(TIPLINE_DATA_DIR=data_dir) if data_dir else _settings())
        with svc.db.session() as session:
            rows = session.execute(
                select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
            ).scalars().all()
            for r in reversed(rows):
                click.echo(f"{r.created_at:%H:%M:%S} {r.channel:5} {r.recipient:22} {r.body}")


# -- keys ----------------------------------------------------------------------------------
@main.group()
def keys() -> None:
    """Key file: create, rotate, retire old keys."""


@keys.command("init")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None)
def keys_init(key_file: Path | None) -> None:
    """Create a new key file (mode 0600). Refuses to overwrite."""
    with fail_cleanly():
        path = key_file or _settings().key_file
    if path.exists():
        _die(f"{path} already exists; refusing to overwrite a key file")
    write_key_file(path, KeyRing.generate())
    click.echo(f"created {path} (mode 0600). Back it up: without it no tip can be read.")


@keys.command("rotate")
@click.option("--batch", default=500, show_default=True)
def keys_rotate(batch: int) -> None:
    """Make a new key active and re-wrap every data key under it (content is not re-encrypted).

    Safe to interrupt and run again: it continues where it stopped.
    """
    from tipline.db import Database
    from tipline.tips.models import DataKey

    with fail_cleanly():
        settings = _settings()
        ring = load_key_file(settings.key_file)
        check_database(settings)
    db_ = Database(settings.database_url)
    with db_.session() as session:
        stale = session.execute(
            select(func.count(DataKey.id)).where(
                DataKey.kek_id.not_in([ring.active_id, SEALED_ONLY]))
        ).scalar_one()
    if stale == 0:
        ring = ring.with_new_active()
        write_key_file(settings.key_file, ring)
        click.echo(f"new active key {ring.active_id} written to {settings.key_file}")
    else:
        click.echo(f"continuing an earlier rotation to {ring.active_id}")
    vault = Vault(ring)
    done = _rewrap_all(db_, vault, batch)
    click.echo(f"re-wrapped {done} data keys under {ring.active_id}")
    old = sorted(set(ring.keks) - {ring.active_id})
    if old:
        click.echo(f"old keys still in the file: {', '.join(old)}; "
                   "remove them with `tipline keys retire` once backups are rotated")


def _rewrap_all(db_: Any, vault: Vault, batch: int) -> int:
    from tipline.tips.models import DataKey

    active = vault.active_key_id
    with db_.session() as session:
        total = session.execute(
            select(func.count(DataKey.id)).where(DataKey.kek_id.not_in([active, SEALED_ONLY]))
        ).scalar_one()
    done = 0
    last_id = 0
    with click.progressbar(length=total, label="re-wrapping data keys") as bar:
        while True:
            with db_.session() as session:
                rows = session.execute(
                    select(DataKey).where(DataKey.kek_id.not_in([active, SEALED_ONLY]),
                                          DataKey.id > last_id)
                    .order_by(DataKey.id).limit(batch)
                ).scalars().all()
                if not rows:
                    break
                for row in rows:
                    new = vault.rewrap(row.wrapped())
                    if new is not None:
                        session.execute(
                            update(DataKey).where(DataKey.id == row.id, DataKey.slots == row.slots)
                            .values(slots=new.slots, kek_id=active)
                        )
                    last_id = row.id
                done += len(rows)
                bar.update(len(rows))
    return done


@keys.command("retire")
def keys_retire() -> None:
    """Remove keys that no data key uses any more from the key file."""
    from tipline.db import Database
    from tipline.tips.models import DataKey

    with fail_cleanly():
        settings = _settings()
        ring = load_key_file(settings.key_file)
        check_database(settings)
    db_ = Database(settings.database_url)
    with db_.session() as session:
        used = set(session.execute(select(DataKey.kek_id).distinct()).scalars())
    retire = set(ring.keks) - used - {ring.active_id}
    if not retire:
        click.echo("no key can be retired")
        return
    write_key_file(settings.key_file, ring.without(retire))
    click.echo(f"retired {', '.join(sorted(retire))}")


@keys.command("status")
def keys_status() -> None:
    from tipline.db import Database
    from tipline.tips.models import DataKey

    with fail_cleanly():
        settings = _settings()
        ring = load_key_file(settings.key_file)
        check_database(settings)
    db_ = Database(settings.database_url)
    with db_.session() as session:
        rows = session.execute(
            select(DataKey.kek_id, func.count(DataKey.id)).group_by(DataKey.kek_id)
        ).all()
    click.echo(f"active key: {ring.active_id}")
    for kid, n in rows:
        if kid == SEALED_ONLY:
            click.echo(f"  sealed to staff keys only (no key-file slot): {n} data keys")
            continue
        click.echo(f"  {kid}: {n} data keys{' (active)' if kid == ring.active_id else ''}")


# -- sealing to staff keys (docs/crypto.md) --------------------------------------------------

def _district_id(session: Any, code: str) -> int:
    from tipline.directory.models import District

    district = session.execute(select(District).where(District.code == code)).scalar_one_or_none()
    if district is None:
        _die(f"unknown district {code!r}")
    return int(district.id)


def _read_secret(prompt: str) -> str:
    if sys.stdin.isatty():
        return str(click.prompt(prompt, hide_input=True))
    return sys.stdin.readline().rstrip("\n")


@keys.command("district-init")
@click.option("--district", "district_code", required=True)
def keys_district_init(district_code: str) -> None:
    """Create a district's read key, sealed to its staff members who have a personal key."""
    from tipline.accounts import keys as staff_keys
    from tipline.app import build_services
    from tipline.audit.services import record

    with fail_cleanly():
        svc = build_services(_settings())
        with svc.db.session() as session:
            district_id = _district_id(session, district_code)
            try:
                row = staff_keys.district_init(session, district_id)
            except staff_keys.KeyAccessError as exc:
                _die(str(exc))
            holders = len(staff_keys.district_readers_with_keys(session, district_id))
            record(session, "keys.district_init", actor="cli", object_type="district",
                   object_id=district_id, detail={"key": row.rid, "holders": holders})
    click.echo(f"district {district_code}: read key {row.rid} sealed to {holders} staff "
               "member(s); others get access from a colleague (Access to tips)")


@keys.command("recovery-init")
@click.option("--district", "district_code", required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the recovery key to this file (mode 0600) instead of printing it.")
@click.option("--user", "email", default=None,
              help="A staff member who holds the district key (password read from stdin).")
def keys_recovery_init(district_code: str, out: Path | None, email: str | None) -> None:
    """Make the district's recovery key: shown once, only its public half is stored."""
    from tipline.accounts import keys as staff_keys
    from tipline.accounts.services import find_user
    from tipline.app import build_services
    from tipline.audit.services import record

    if out is not None and out.exists():
        _die(f"{out} already exists; refusing to overwrite it")
    password = _read_secret("Password") if email else ""
    with fail_cleanly():
        svc = build_services(_settings())
        with svc.db.session() as session:
            district_id = _district_id(session, district_code)
            chain = None
            if email:
                user = find_user(session, email)
                personal = staff_keys.unlock_personal_key(session, user, password) \
                    if user is not None else None
                if user is None or personal is None:
                    _die("that email and password do not open a staff key")
                chain = staff_keys.keychain_for(session, user.id, personal)
            try:
                private = staff_keys.recovery_init(session, district_id, chain)
            except staff_keys.KeyAccessError as exc:
                _die(str(exc))
            record(session, "keys.recovery_init", actor="cli", object_type="district",
                   object_id=district_id)
            text_ = staff_keys.recovery_text(district_code, private)
            if out is not None:
                fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text_ + "\n")
    if out is not None:
        click.echo(f"recovery key written to {out} (mode 0600). Move it off this server now "
                   "(print it, or keep it offline): the server keeps only its public half.")
    else:
        click.echo("Recovery key (shown once; keep it offline, never on this server):")
        click.echo(text_)


@keys.command("recover")
@click.option("--district", "district_code", required=True)
@click.option("--recovery-key", "key_path", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--user", "email", required=True)
def keys_recover(district_code: str, key_path: Path, email: str) -> None:
    """Grant a staff member the district key again, opened with the recovery key."""
    from tipline.accounts import keys as staff_keys
    from tipline.accounts.services import find_user
    from tipline.app import build_services
    from tipline.audit.services import record

    with fail_cleanly():
        svc = build_services(_settings())
        with svc.db.session() as session:
            district_id = _district_id(session, district_code)
            user = find_user(session, email)
            if user is None:
                _die(f"no account {email}")
            try:
                private = staff_keys.parse_recovery(key_path.read_text(encoding="utf-8"),
                                                    district_code)
                made = staff_keys.recover(session, district_id, private, user)
            except staff_keys.KeyAccessError as exc:
                _die(str(exc))
            record(session, "keys.recover", actor="cli", object_type="staff_user",
                   object_id=user.id, detail={"keys": sorted(g.read_key.rid for g in made)})
    click.echo(f"{email} can read the district's tips again ({len(made)} key(s) granted)")


@keys.command("seal-existing")
@click.option("--batch", default=200, show_default=True)
@click.option("--dry-run", is_flag=True, help="Count what would be sealed; change nothing.")
def keys_seal_existing(batch: int, dry_run: bool) -> None:
    """Seal every tip's data key to its district (and police agency) keys, then remove the
    key-file slot. Safe to interrupt and run again."""
    from tipline.accounts.seal_existing import count_pending, seal_existing
    from tipline.app import build_services

    with fail_cleanly():
        svc = build_services(_settings())
        with svc.db.session() as session:
            total = count_pending(session)
        with click.progressbar(length=total, label="sealing data keys") as bar:
            report = seal_existing(svc.db.session, svc.vault, batch=batch, dry_run=dry_run,
                                   progress=bar.update)
    verb = "would seal" if dry_run else "sealed"
    click.echo(f"{verb} {report.sealed} data keys"
               + "".join(f"; {n} to {a}" for a, n in sorted(report.by_audience.items())))
    if report.no_district_key:
        click.echo(f"{report.no_district_key} data keys left with the key file: their "
                   "district has no read key yet (a staff member's first sign-in makes it, "
                   "or `tipline keys district-init`)")
    if report.not_tip_data:
        click.echo(f"{report.not_tip_data} data keys belong to no tip; left as they are")


# -- users ---------------------------------------------------------------------------------
@main.group()
def users() -> None:
    """Staff accounts."""


@users.command("add")
@click.argument("email")
@click.option("--role", required=True,
              type=click.Choice(["district_admin", "school_staff", "police_liaison", "auditor",
                                 "installation_admin"]))
@click.option("--district", "district_code", default=None)
@click.option("--school", "schools", multiple=True)
@click.option("--contact", "contact_key", default=None, help="Link a police liaison to a contact.")
def users_add(email: str, role: str, district_code: str | None, schools: tuple[str, ...],
              contact_key: str | None) -> None:
    """Create a staff account; its one-time first password is read from standard input, never
    a flag (the holder replaces it at the first sign-in)."""
    from tipline.accounts.services import ONE_TIME_HOURS, AccountError, create_user
    from tipline.app import build_services

    if role == "installation_admin" and (district_code or schools or contact_key):
        _die("an installation administrator belongs to no district, school or contact")
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    with fail_cleanly():
        svc = build_services(_settings())
        try:
            with svc.db.session() as session:
                user = create_user(session, svc.vault, email=email, password=password, role=role,
                                   district_code=district_code, school_codes=list(schools),
                                   contact_key=contact_key)
                from tipline.audit.services import record

                record(session, "user.create", actor="cli", object_type="staff_user",
                       object_id=user.id, detail={"role": role})
        except AccountError as exc:
            _die(str(exc))
    click.echo(f"created {email} ({role}); the password is a one-time password: it works for "
               f"one sign-in within {ONE_TIME_HOURS} hours, which enrols TOTP and sets a new "
               "password")


# -- tips ----------------------------------------------------------------------------------
@main.group()
def tips() -> None:
    """Tip maintenance."""


@tips.command("shred")
@click.argument("reference")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def tips_shred(reference: str, yes: bool) -> None:
    """Destroy a tip's data key: its content becomes unrecoverable everywhere, backups too."""
    from tipline.app import build_services
    from tipline.audit.services import record
    from tipline.tips.models import Tip

    if not yes:
        click.confirm(f"Destroy the content of {reference} for ever?", abort=True)
    with fail_cleanly():
        svc = build_services(_settings())
        with svc.db.session() as session:
            tip = session.execute(
                select(Tip).where(Tip.reference == reference)
            ).scalar_one_or_none()
            if tip is None:
                _die(f"no tip {reference}")
            assert tip is not None  # noqa: S101
            key = tip.data_key
            tip.data_key_id = None
            tip.phone_hash = None
            if key is not None:
                session.delete(key)
            record(session, "tip.shred", actor="cli", tip_id=tip.id, object_type="tip",
                   object_id=tip.reference)
    click.echo(f"{reference}: data key destroyed")


def _register_plugins() -> None:
    """Packages add their own commands through ``register(main)`` in a ``cli`` module."""
    import importlib

    for module in (
        "tipline.routing.cli", "tipline.telephony.cli", "tipline.triage.cli", "tipline.admin.cli",
        "tipline.ops.cli",
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if not exc.name or not module.startswith(exc.name):
                raise
            continue
        mod.register(main)


_register_plugins()


if __name__ == "__main__":
    main()
