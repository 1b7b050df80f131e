"""Backups that restore: a consistent database dump with a manifest, the key file apart.

PostgreSQL is dumped with ``pg_dump --format=custom`` inside an exported snapshot, so the row
counts in the manifest are those of the dump itself; SQLite is copied with its online backup
API. The key file is copied only when asked, and never into the dump's folder: whoever holds
both can read every tip. ``restore`` refuses a database that is not empty, checks every
checksum first, and afterwards checks what the app needs (schema, audit chain, data keys).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from tipline.settings import Settings

MANIFEST = "manifest.json"
PG_DUMP = "database.pgdump"
SQLITE_DUMP = "database.sqlite3"
FORMAT = 1

Progress = Callable[[int, int], None]  # (done, total)


class BackupError(Exception):
    """The backup or restore cannot go on; the message says why in one line."""


@dataclass
class Manifest:
    tipline_version: str
    created_at: str
    database: str  # postgresql | sqlite
    server_version: str
    dump_tool: str
    schema_revisions: list[str]
    files: dict[str, dict[str, Any]]
    counts: dict[str, int]
    key_ids: list[str] = field(default_factory=list)  # key-file KEKs the data keys need
    format: int = FORMAT

    def write(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        try:
            data = json.loads((folder / MANIFEST).read_text())
            if data.get("format") != FORMAT:
                raise BackupError(f"{folder / MANIFEST}: unknown format {data.get('format')!r}")
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise BackupError(f"{folder / MANIFEST}: unreadable ({exc})") from None


# -- helpers ---------------------------------------------------------------------------------
def sha256_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    total, done = path.stat().st_size, 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return digest.hexdigest()


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URL without its password, and the environment that carries the password
    (never on a command line, where ``ps`` shows it)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    bare = parsed.set(drivername="postgresql", password=None)
    return bare.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} not found: install the PostgreSQL client tools "
                          "(Debian: postgresql-client) matching the server's major version")
    return found


def _engine(url: str) -> Any:
    from tipline.db import make_engine

    return make_engine(url, poolclass=NullPool)


def count_rows(conn: Connection) -> dict[str, int]:
    counts = {}
    for table in sorted(inspect(conn).get_table_names()):
        quoted = conn.dialect.identifier_preparer.quote(table)
        counts[table] = int(conn.execute(text(f"SELECT count(*) FROM {quoted}")).scalar_one())  # noqa: S608
    return counts


def _revisions(conn: Connection) -> list[str]:
    from alembic.runtime.migration import MigrationContext

    return sorted(MigrationContext.configure(conn).get_current_heads())


def _kek_ids(conn: Connection) -> list[str]:
    if "data_keys" not in inspect(conn).get_table_names():
        return []
    rows = conn.execute(text("SELECT DISTINCT kek_id FROM data_keys")).scalars()
    return sorted(str(r) for r in rows if r and r != "sealed")


# -- backup ----------------------------------------------------------------------------------
def backup(settings: Settings, out: Path, *, key_out: Path | None = None,
           progress: Progress | None = None) -> Manifest:
    """Write the dump and its manifest into ``out`` (new or empty), and the key file to
    ``key_out`` only if given (outside ``out``)."""
    from tipline.ops.release import __version__

    out = out.resolve()
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} is not empty; give a new folder for each backup")
    if key_out is not None:
        key_out = key_out.resolve()
        if key_out == out or out in key_out.parents:
            raise BackupError("the key file must not be written beside the database dump: "
                              "whoever holds both can read every tip")
        if key_out.exists():
            raise BackupError(f"{key_out} exists; refusing to overwrite")
        if not settings.key_file.is_file():
            raise BackupError(f"key file {settings.key_file} not found")
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    if settings.is_sqlite:
        manifest = _backup_sqlite(settings, out, progress)
    else:
        manifest = _backup_postgres(settings, out, progress)
    manifest.tipline_version = __version__
    manifest.write(out)
    if key_out is not None:
        key_out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(key_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(settings.key_file.read_bytes())
    return manifest


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _backup_postgres(settings: Settings, out: Path, progress: Progress | None) -> Manifest:
    url, env = _libpq(settings.database_url)
    dump = out / PG_DUMP
    pg_dump = _tool("pg_dump")
    version = subprocess.run([pg_dump, "--version"], capture_output=True, text=True,  # noqa: S603
                             check=True).stdout.strip()
    engine = _engine(settings.database_url)
    try:
        with engine.connect() as conn:
            # One snapshot for the counts and the dump: the manifest describes the dump.
            conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            counts = count_rows(conn)
            revisions = _revisions(conn)
            keks = _kek_ids(conn)
            server = str(conn.execute(text("SHOW server_version")).scalar_one())
            total = len(counts)
            proc = subprocess.Popen(  # noqa: S603
                [pg_dump, "--format=custom", "--no-owner", "--no-privileges", "--verbose",
                 f"--snapshot={snapshot}", f"--file={dump}", f"--dbname={url}"],
                env=env, stderr=subprocess.PIPE, text=True)
            assert proc.stderr is not None  # noqa: S101
            done, tail = 0, []
            for line in proc.stderr:
                if "dumping contents of table" in line:
                    done += 1
                    if progress:
                        progress(min(done, total), total)
                else:
                    tail.append(line.strip())
            if proc.wait() != 0:
                raise BackupError("pg_dump failed: " + " | ".join(tail[-3:])[:400])
            conn.rollback()
    finally:
        engine.dispose()
    return Manifest("", _now(), "postgresql", server, version, revisions,
                    {PG_DUMP: {"sha256": sha256_file(dump), "bytes": dump.stat().st_size}},
                    counts, keks)


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database:
        raise BackupError("TIPLINE_DATABASE_URL names no SQLite file")
    return Path(database)


def _backup_sqlite(settings: Settings, out: Path, progress: Progress | None) -> Manifest:
    source = _sqlite_path(settings.database_url)
    if not source.is_file():
        raise BackupError(f"database file {source} not found")
    dump = out / SQLITE_DUMP
    _sqlite_copy(source, dump, progress)
    engine = _engine(f"sqlite:///{dump}")
    try:
        with engine.connect() as conn:
            counts, revisions, keks = count_rows(conn), _revisions(conn), _kek_ids(conn)
    finally:
        engine.dispose()
    return Manifest("", _now(), "sqlite", sqlite3.sqlite_version, "sqlite3 online backup API",
                    revisions,
                    {SQLITE_DUMP: {"sha256": sha256_file(dump), "bytes": dump.stat().st_size}},
                    counts, keks)


# -- restore ---------------------------------------------------------------------------------
@dataclass
class KeyCheck:
    checked: int = 0
    kek_slots: int = 0
    sealed_slots: int = 0
    bad: list[str] = field(default_factory=list)  # data key uid: why


@dataclass
class RestoreReport:
    manifest: Manifest
    counts_match: bool
    schema: str
    audit_ok: bool
    audit_checked: int
    keys: KeyCheck
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_files(folder: Path, manifest: Manifest, progress: Progress | None = None) -> None:
    for name, facts in manifest.files.items():
        path = folder / name
        if not path.is_file():
            raise BackupError(f"{path} is missing")
        if sha256_file(path, progress) != facts.get("sha256"):
            raise BackupError(f"{path}: checksum does not match the manifest; the copy is "
                              "damaged")


def _is_empty(settings: Settings) -> bool:
    if settings.is_sqlite:
        path = _sqlite_path(settings.database_url)
        if not path.exists():
            return True
    engine = _engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return not inspect(conn).get_table_names()
    finally:
        engine.dispose()


def restore(settings: Settings, folder: Path, *, key_file: Path | None = None,
            progress: Progress | None = None) -> RestoreReport:
    """Bring a backup into an empty installation, then check it."""
    folder = folder.resolve()
    manifest = Manifest.read(folder)
    kind = "sqlite" if settings.is_sqlite else "postgresql"
    if manifest.database != kind:
        raise BackupError(f"this backup is of a {manifest.database} database; "
                          f"TIPLINE_DATABASE_URL is {kind}")
    verify_files(folder, manifest, progress)
    if key_file is not None:
        if settings.key_file.exists():
            raise BackupError(f"{settings.key_file} exists; refusing to overwrite a key file")
        _check_key_file(key_file, manifest)
    elif not settings.key_file.is_file():
        raise BackupError(f"no key file at {settings.key_file}: give the backed-up one with "
                          "--key-file (without it no tip can be read)")
    else:
        _check_key_file(settings.key_file, manifest)
    if not _is_empty(settings):
        raise BackupError("the database is not empty; restore only into a new, empty database")
    if kind == "sqlite":
        _restore_sqlite(settings, folder / SQLITE_DUMP, progress)
    else:
        _restore_postgres(settings, folder / PG_DUMP)
    if key_file is not None:
        settings.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(settings.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key_file.read_bytes())
    return check_installation(settings, manifest)


def _check_key_file(path: Path, manifest: Manifest) -> None:
    from tipline.crypto import KeyFileError, load_key_file

    try:
        ring = load_key_file(path)
    except (KeyFileError, OSError) as exc:
        raise BackupError(f"key file {path}: {exc}") from None
    missing = sorted(set(manifest.key_ids) - set(ring.keks))
    if missing:
        raise BackupError(f"key file {path} lacks keys the data needs ({', '.join(missing)}): "
                          "it is not this installation's key file, or an older copy")


def _restore_postgres(settings: Settings, dump: Path) -> None:
    url, env = _libpq(settings.database_url)
    proc = subprocess.run(  # noqa: S603
        [_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
         "--single-transaction", f"--dbname={url}", str(dump)],
        env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BackupError("pg_restore failed: " + proc.stderr.strip()[-400:])


def _restore_sqlite(settings: Settings, dump: Path, progress: Progress | None) -> None:
    target = _sqlite_path(settings.database_url)
    target.parent.mkdir(parents=True, exist_ok=True)
    _sqlite_copy(dump, target, progress)


def _sqlite_copy(source: Path, target: Path, progress: Progress | None) -> None:
    """SQLite's online backup API, page by page (a consistent copy of a live database),
    opening the source read-only."""

    def step(_status: int, remaining: int, total: int) -> None:
        if progress:
            progress(total - remaining, total)

    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=64, progress=step)
    finally:
        dst.close()
        src.close()


def check_installation(settings: Settings, manifest: Manifest | None = None) -> RestoreReport:
    """What ``tipline check`` and ``tipline audit verify`` check, plus every data key."""
    from tipline import crypto, migrations
    from tipline.audit.services import verify_chain
    from tipline.crypto import load_key_file

    problems: list[str] = []
    ring = load_key_file(settings.key_file)
    vault = crypto.Vault(ring)
    current, heads = migrations.status(settings.database_url)
    schema = "up to date" if current == heads else "older than this release"
    engine = _engine(settings.database_url)
    try:
        with engine.connect() as conn:
            counts = count_rows(conn)
        with Session(engine) as session:
            audit = verify_chain(session)
            keys = check_data_keys(session, vault)
    finally:
        engine.dispose()
    counts_match = manifest is None or counts == manifest.counts
    if manifest is not None and not counts_match:
        diff = {t: (manifest.counts.get(t), counts.get(t)) for t in set(counts) | set(
            manifest.counts) if manifest.counts.get(t) != counts.get(t)}
        problems.append(f"row counts differ from the manifest: {diff}")
    if not audit.ok:
        problems.append(f"audit chain broken at entry {audit.first_bad_id}: {audit.reason}")
    if keys.bad:
        problems.append(f"{len(keys.bad)} data keys fail: {'; '.join(keys.bad[:5])}")
    if schema != "up to date":
        problems.append("schema is older than this release: run `tipline db upgrade`")
    if manifest is None:
        manifest = Manifest("", "", "", "", "", [], {}, counts)
    return RestoreReport(manifest, counts_match, schema, audit.ok, audit.checked, keys,
                         problems)


# -- data keys -------------------------------------------------------------------------------


def check_data_keys(session: Session, vault: Any, batch: int = 2000) -> KeyCheck:
    """Every data key: each key-file slot must open with the key file; each sealed slot
    (issue 13: sealed to staff or recovery keys, which this server cannot open) must be well
    formed and name a recipient key that exists. A key with no slot at all fails."""
    from tipline.crypto import WrappedKey
    from tipline.tips.models import DataKey

    known = _recipients(session)
    report = KeyCheck()
    last = 0
    while True:
        rows = session.execute(
            select(DataKey.id, DataKey.uid, DataKey.slots).where(DataKey.id > last)
            .order_by(DataKey.id).limit(batch)).all()
        if not rows:
            return report
        for key_id, uid, slots_text in rows:
            last = key_id
            report.checked += 1
            why = _check_slots(vault, WrappedKey, uid, slots_text, known, report)
            if why:
                report.bad.append(f"{uid}: {why}")


def _check_slots(vault: Any, wrapped_cls: Any, uid: str, slots_text: str, known: set[str] | None,
                 report: KeyCheck) -> str | None:
    try:
        data = json.loads(slots_text)
        slots = list(data["slots"])
    except (ValueError, KeyError, TypeError):
        return "malformed key slots"
    if not slots:
        return "no key slot"
    for slot in slots:
        kind = slot.get("kind")
        if kind == "kek":
            single = json.dumps({"v": data.get("v", 1), "slots": [slot]})
            try:
                vault.unwrap(wrapped_cls(uid, single))
            except Exception:
                return f"key-file slot {slot.get('kid')} does not open with this key file"
            report.kek_slots += 1
        elif kind == "x25519":
            rid = str(slot.get("rid", ""))
            try:
                epk = base64.b64decode(slot["epk"], validate=True)
                base64.b64decode(slot["n"], validate=True)
                base64.b64decode(slot["ct"], validate=True)
            except (KeyError, ValueError):
                return f"sealed slot for {rid or '?'} is malformed"
            if len(epk) != 32:
                return f"sealed slot for {rid} has no valid ephemeral key"
            if rid.startswith("code:"):
                pass  # the reporter's receipt-code key: derived, not stored
            elif known is not None and rid not in known:
                return f"sealed slot names an unknown recipient key {rid}"
            report.sealed_slots += 1
        else:
            return f"unknown slot kind {kind!r}"
    return None


def _recipients(session: Session) -> set[str] | None:
    """Recipient ids of the public keys in the database (None: this schema has none)."""
    try:
        from tipline.crypto.models import ReadKey, RecoveryKey, StaffKey
    except ImportError:
        return None
    found: set[str] = set()
    try:
        for model in (ReadKey, StaffKey, RecoveryKey):
            found.update(str(getattr(row, "rid", "")) for row in
                         session.execute(select(model)).scalars())
    except Exception:  # an older schema without the key tables
        session.rollback()
        return None
    return found
