"""Upgrading from the previous release: its schema (``tipline.ops.release.PREVIOUS_SCHEMA``)
built with alembic on an empty PostgreSQL database, data written as that release wrote it
(web and SMS tips with their sealed messages, staff, a routing policy, an audit log), then
``tipline db upgrade`` and everything checked."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import JSON, Boolean, DateTime, Integer, LargeBinary, MetaData, Table, select, text
from sqlalchemy.engine import Connection

from tests.ops.pg import drop, recreate, scratch_url
from tipline import crypto, migrations
from tipline.audit.services import GENESIS, compute_hash, verify_chain
from tipline.crypto import KeyRing, Vault, field_ad, write_key_file
from tipline.db import Database, make_engine
from tipline.ops.release import PREVIOUS_RELEASE, PREVIOUS_SCHEMA, RELEASES, __version__
from tipline.tips.receipts import RECEIPT_PURPOSE, normalize_code

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 2, 15, 30, tzinfo=UTC)
POLICY = (ROOT / "config" / "policy.demo.yaml").read_text()


def _filler(column: Any) -> Any:
    kind = column.type
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, Integer):
        return 0
    if isinstance(kind, DateTime):
        return NOW
    if isinstance(kind, LargeBinary):
        return b""
    if isinstance(kind, JSON):
        return {}
    return "x"


def insert(conn: Connection, meta: MetaData, table: str, **values: Any) -> int:
    """One row as the old release's schema has it: given values, and a plain value for any
    other required column that has no default."""
    t: Table = meta.tables[table]
    for col in t.columns:
        if (col.name not in values and not col.nullable and col.server_default is None
                and not col.primary_key):
            values[col.name] = _filler(col)
    return int(conn.execute(t.insert().values(**values).returning(t.c.id)).scalar_one())


def test_the_release_record_names_a_previous_schema() -> None:
    assert RELEASES[-1][0] == __version__ and __version__ != PREVIOUS_RELEASE
    versions = ROOT / "tipline" / "migrations" / "versions"
    script_ids = {p.name.split("_")[0] for p in versions.glob("0*.py")}
    assert PREVIOUS_SCHEMA in script_ids
    out = subprocess.run([sys.executable, "-c", "from tipline.cli import main; main()",
                          "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"tipline {__version__}"


@pytest.mark.slow
def test_upgrade_from_the_previous_release_keeps_everything(tmp_path: Path) -> None:
    url = scratch_url("upgrade")
    recreate(url)
    try:
        _upgrade(url, tmp_path)
    finally:
        drop(url)


def _upgrade(url: str, tmp: Path) -> None:
    migrations.upgrade(url, PREVIOUS_SCHEMA)
    ring = KeyRing.generate()
    write_key_file(tmp / "keys.json", ring)
    vault = Vault(ring)
    engine = make_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    words = {"web": "Someone has a knife in locker 112", "sms": "a kid is selling pills"}
    code = "7K3M-Q9PX-2D4F-HJ8T"
    with engine.begin() as conn:
        district = insert(conn, meta, "districts", code="slps", name="Saint Louis Public Schools")
        school = insert(conn, meta, "schools", code="slps-roosevelt", name="Roosevelt High",
                        district_id=district, active=True)
        staff = insert(conn, meta, "staff_users", email="counselor@slps.invalid",
                       role="school_staff", district_id=district, active=True,
                       uid="u" * 32)
        policy = insert(conn, meta, "routing_policies", version=1,
                        source_name="policy.demo.yaml", source_text=POLICY,
                        sha256=hashlib.sha256(POLICY.encode()).hexdigest(), active=True,
                        loaded_at=NOW, loaded_by="cli")
        tips = {}
        for n, channel in enumerate(("web", "sms")):
            dek, wrapped = vault.new_data_key()
            key_id = insert(conn, meta, "data_keys", uid=wrapped.uid, slots=wrapped.slots,
                            kek_id=ring.active_id, created_at=NOW)
            tip_uid, msg_uid = f"{n:032x}", f"{n + 10:032x}"
            tip_id = insert(
                conn, meta, "tips", uid=tip_uid, reference=f"T-OLD{n}", district_id=district,
                school_id=school, category="weapon", severity=3, reporter_severity=3,
                status="new", channel=channel, language="en", danger_now=False,
                created_at=NOW, updated_at=NOW, data_key_id=key_id,
                receipt_hash=vault.lookup_hash(RECEIPT_PURPOSE, normalize_code(code))
                if channel == "web" else None,
                phone_hash=vault.lookup_hash("phone", "+13145550188") if channel == "sms"
                else None)
            insert(conn, meta, "messages", uid=msg_uid, tip_id=tip_id, author="reporter",
                   channel=channel, created_at=NOW,
                   body_ct=vault.seal(dek, words[channel].encode(),
                                      field_ad("messages", "body_ct", msg_uid)))
            tips[channel] = tip_id
        prev = GENESIS
        for i, (action, tip_id) in enumerate((("tip.read", tips["web"]),
                                              ("tip.status", tips["sms"]),
                                              ("user.create", None))):
            event = SimpleNamespace(at=NOW + timedelta(seconds=i), actor="staff",
                                    actor_user_id=staff, action=action, tip_id=tip_id,
                                    object_type="tip", object_id=str(tip_id),
                                    detail={"n": i})
            entry = compute_hash(prev, event)  # type: ignore[arg-type]
            insert(conn, meta, "audit_events", at=event.at, actor=event.actor,
                   actor_user_id=staff, action=action, tip_id=tip_id, object_type="tip",
                   object_id=str(tip_id), detail=event.detail, prev_hash=prev,
                   entry_hash=entry)
            prev = entry
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                  for t in ("tips", "messages", "data_keys", "staff_users", "audit_events",
                            "routing_policies", "schools")}
    engine.dispose()

    env = {k: v for k, v in os.environ.items() if not k.startswith("TIPLINE_")}
    env.update(TIPLINE_MODE="test", TIPLINE_DATABASE_URL=url, TIPLINE_BROKER_URL="memory://",
               TIPLINE_KEY_FILE=str(tmp / "keys.json"), TIPLINE_DATA_DIR=str(tmp),
               TIPLINE_CONFIG_FILE=str(tmp / "empty.env"))
    (tmp / "empty.env").write_text("")
    up = subprocess.run([sys.executable, "-c", "from tipline.cli import main; main()", "db",
                         "upgrade"], env=env, cwd=tmp, capture_output=True, text=True,
                        timeout=300)
    assert up.returncode == 0, up.stderr[-2000:]
    current, heads = migrations.status(url)
    assert current == heads

    from tipline.accounts.models import StaffUser
    from tipline.routing.models import RoutingPolicy
    from tipline.tips.models import Message, Tip

    crypto.install(vault)
    db = Database(url)
    try:
        with db.session() as session:
            for table, n in counts.items():
                assert session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() \
                    == n, table
            assert verify_chain(session).ok
            for channel, tip_id in tips.items():
                tip = session.get(Tip, tip_id)
                assert tip is not None and tip.channel == channel
                msg = session.execute(select(Message).where(Message.tip_id == tip_id)).scalar_one()
                assert msg.body == words[channel]
            web = session.get(Tip, tips["web"])
            assert web.receipt_hash == vault.lookup_hash(RECEIPT_PURPOSE, normalize_code(code))
            user = session.execute(select(StaffUser)).scalar_one()
            assert user.email == "counselor@slps.invalid" and user.role == "school_staff"
            pol = session.execute(select(RoutingPolicy)).scalar_one()
            assert pol.source_text == POLICY and pol.id == policy and pol.active
            slots = json.loads(session.execute(text("SELECT slots FROM data_keys")).scalars()
                               .first())
            assert slots["slots"]
    finally:
        db.dispose()
