"""Benchmark the staff dashboard with 100,000 tips in PostgreSQL: p95 server time.

    .venv/bin/python -m bench.dashboard [--tips 100000] [--requests 200]

What it does, all on 127.0.0.1:

1. Creates a fresh PostgreSQL database ``tipline_bench_dashboard`` (dropped first if it
   exists), migrates it, loads the demo directory and writes a throw-away key file.
2. Inserts ``--tips`` tips in batches of 2,000 with multi-row INSERTs. Every tip is written
   as intake writes it: its own data key (wrapped by the vault), the first message and the
   structured details sealed under that key, and a routing job. Tips are spread over the
   demo schools, categories and severities, over two years, mostly closed (as a district's
   history would be): 6% open, a few hundred of them unacknowledged life-safety.
3. Builds the app with ``create_app`` and measures, in-process with the Flask test client,
   the server time of each request (routing, scope query, decryption, audit write and commit,
   template rendering; no network): the queue for a district admin (default "open" view,
   "all statuses" deep in the pages, a school + category filter), the queue for one school's
   staff, the polling endpoint, and tip pages of random tips (each read writes its audit
   event and commits, as in production).
4. Prints p50 / p95 / max per page and drops the database.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "tipline_bench_dashboard"
BENCH_URL = f"postgresql://postgres@127.0.0.1:5432/{BENCH_DB}"
BATCH = 2000
TARGET_MS = 300.0

CATEGORIES = ["weapon", "threat", "self_harm", "bullying", "abuse", "substance",
              "family_crisis", "other"]
WORDS = ["someone", "said", "they", "will", "bring", "a", "knife", "tomorrow", "near", "the",
         "gym", "and", "my", "friend", "is", "scared", "of", "going", "to", "class", "because",
         "group", "chat", "messages", "about", "fight", "after", "school"]


def _fresh_database() -> None:
    from tipline import migrations
    from tipline.db import make_engine

    admin = make_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": BENCH_DB})
        conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DB}"'))
        conn.execute(text(f'CREATE DATABASE "{BENCH_DB}"'))
    admin.dispose()
    migrations.upgrade(BENCH_URL)


def _drop_database() -> None:
    from tipline.db import make_engine

    admin = make_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": BENCH_DB})
        conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DB}"'))
    admin.dispose()


def _reference(rng: random.Random, seen: set[str]) -> str:
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    while True:
        raw = "".join(rng.choice(alphabet) for _ in range(6))
        ref = f"T-{raw[:4]}-{raw[4:]}"
        if ref not in seen:
            seen.add(ref)
            return ref


def insert_tips(session: Session, vault: Any, count: int, rng: random.Random) -> list[str]:
    """Bulk-insert sealed tips as intake would store them; returns their uids.

    A tip of a district with a read key is sealed to it (issue 13), as intake seals; others
    keep the key-file slot (legacy mode)."""
    from tipline.crypto import audience_keys, field_ad
    from tipline.db import new_uid
    from tipline.directory.models import School
    from tipline.routing.models import RoutingJob
    from tipline.tips.models import DataKey, Message, Tip

    schools = [(s.id, s.district_id) for s in session.execute(select(School)).scalars()]
    audiences = {d: audience_keys(session, d) for d in {d for _s, d in schools}}
    now = datetime.now(UTC)
    seen: set[str] = set()
    uids: list[str] = []
    done = 0
    while done < count:
        n = min(BATCH, count - done)
        keys, tips, bodies = [], [], []
        for _ in range(n):
            school_id, district_id = rng.choice(schools)
            dek, wrapped = vault.new_data_key(audiences[district_id])
            keys.append({"uid": wrapped.uid, "slots": wrapped.slots,
                         "kek_id": vault.kek_label(wrapped), "created_at": now})
            uid = new_uid()
            created = now - timedelta(minutes=rng.randint(0, 2 * 365 * 24 * 60))
            severity = rng.choices([1, 2, 3, 4], weights=[35, 35, 25, 5])[0]
            open_tip = rng.random() < 0.06
            acked = not open_tip or rng.random() < 0.7
            status = (rng.choice(["new", "acknowledged", "in_progress", "referred"])
                      if open_tip else "closed")
            if not acked:
                status = "new"
            details = json.dumps({"where": "gym", "when": "Friday"}).encode()
            tips.append({
                "uid": uid, "reference": _reference(rng, seen), "school_id": school_id,
                "district_id": district_id, "category": rng.choice(CATEGORIES),
                "severity": severity, "reporter_severity": severity, "status": status,
                "channel": rng.choices(["web", "sms", "voice"], weights=[70, 25, 5])[0],
                "language": "en", "danger_now": severity == 4 and rng.random() < 0.3,
                "created_at": created, "updated_at": created,
                "acknowledged_at": created + timedelta(minutes=4) if acked else None,
                "closed_at": created + timedelta(days=3) if status == "closed" else None,
                "outcome": "resolved" if status == "closed" else None,
                "receipt_hash": vault.lookup_hash("receipt", uid),
                "details_ct": vault.seal(dek, details, field_ad("tips", "details_ct", uid)),
            })
            body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 60)))
            bodies.append((dek, body, created))
        key_ids = session.execute(
            insert(DataKey).returning(DataKey.id, sort_by_parameter_order=True), keys
        ).scalars().all()
        for row, key_id in zip(tips, key_ids, strict=True):
            row["data_key_id"] = key_id
        tip_ids = session.execute(
            insert(Tip).returning(Tip.id, sort_by_parameter_order=True), tips
        ).scalars().all()
        messages, jobs = [], []
        for tip_id, (dek, body, created) in zip(tip_ids, bodies, strict=True):
            muid = new_uid()
            messages.append({
                "uid": muid, "tip_id": tip_id, "author": "reporter", "channel": "web",
                "created_at": created, "relay_status": "n/a",
                "body_ct": vault.seal(dek, body.encode(), field_ad("messages", "body_ct", muid)),
            })
            jobs.append({"tip_id": tip_id, "reason": "intake", "status": "done", "attempts": 1,
                         "created_at": created, "explanation": {"rule": "bench", "contacts": []}})
        session.execute(insert(Message), messages)
        session.execute(insert(RoutingJob), jobs)
        session.commit()
        uids.extend(t["uid"] for t in tips)
        done += n
        print(f"  {done:>7} tips", end="\r", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return uids


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def _measure(client: Any, paths: list[str], label: str) -> dict[str, float]:
    for path in paths[:3]:  # warm-up: template compilation, connection pool, caches
        client.get(path)
    times = []
    for path in paths:
        start = time.perf_counter()
        resp = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        if resp.status_code != 200:
            raise SystemExit(f"{label}: {path} answered {resp.status_code}")
    result = {"n": len(times), "p50": statistics.median(times), "p95": _percentile(times, 95),
              "max": max(times)}
    flag = "ok" if result["p95"] <= TARGET_MS else "OVER TARGET"
    print(f"{label:<44} n={result['n']:<4} p50={result['p50']:7.1f} ms  "
          f"p95={result['p95']:7.1f} ms  max={result['max']:7.1f} ms  {flag}")
    return result


def _signed_in(app: Any, user_id: int, password: str) -> Any:
    """A test client holding a signed-in session with its keys, as the password step leaves
    them (the sign-in flow itself is tested elsewhere)."""
    from datetime import timedelta

    from tipline.accounts import keys
    from tipline.accounts.models import StaffUser

    client = app.test_client()
    with app.extensions["tipline"].db.session() as s:
        user = s.get(StaffUser, user_id)
        personal = keys.unlock_personal_key(s, user, password)
        if personal is None:
            raise SystemExit("the bench account's key does not open")
        hour = timedelta(hours=1)
        handle = keys.open_key_session(s, user, personal, hour, datetime.now(UTC))
        keys.activate_key_session(s, handle, user.id, hour, datetime.now(UTC))
        user_ref = user.get_id()
    with client.session_transaction() as sess:
        sess["_user_id"] = user_ref
        sess["_fresh"] = True
        sess["staff_seen"] = time.time() + 3600
        sess["staff_keys"] = handle.to_cookie()
    return client


def _sealed_vs_legacy(sealed_client: Any, sealed: list[str], legacy_client: Any,
                      legacy: list[str], n: int, rng: random.Random) -> None:
    """Tip pages of sealed and of key-file tips, interleaved request by request, so load on
    the machine falls on both alike; prints both medians and their ratio."""
    times: dict[str, list[float]] = {"sealed": [], "legacy": []}
    for _ in range(n):
        for label, client, uids in (("sealed", sealed_client, sealed),
                                    ("legacy", legacy_client, legacy)):
            start = time.perf_counter()
            resp = client.get(f"/staff/tips/{rng.choice(uids)}")
            times[label].append((time.perf_counter() - start) * 1000)
            if resp.status_code != 200:
                raise SystemExit(f"tip page ({label}) answered {resp.status_code}")
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"tip page interleaved: sealed p50={med['sealed']:.1f} ms, key-file p50="
          f"{med['legacy']:.1f} ms, ratio {med['sealed'] / med['legacy']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tips", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    args = parser.parse_args()

    from tipline.accounts.services import create_user
    from tipline.app import create_app
    from tipline.crypto import KeyRing, write_key_file
    from tipline.directory.loader import load_directory_file
    from tipline.jobs import RecordingQueue
    from tipline.settings import Settings

    rng = random.Random(20261123)  # benchmark data, not secrets
    tmp = Path(tempfile.mkdtemp(prefix="tipline-bench-"))
    key_file = tmp / "keys.json"
    write_key_file(key_file, KeyRing.generate())
    print(f"database {BENCH_DB}: creating and migrating", file=sys.stderr)
    _fresh_database()
    settings = Settings(mode="test", data_dir=tmp, database_url=BENCH_URL,
                        broker_url="memory://", key_file=key_file, secret_key="b" * 40,
                        public_url="https://tips.example.org", demo_data=False)
    app = create_app(settings, queue=RecordingQueue())
    svc = app.extensions["tipline"]
    try:
        with svc.db.session() as s:
            load_directory_file(s, REPO / "config" / "directory.demo.yaml")
        # Staff first: the district admin's account makes SLPS's read key, so the SLPS tips
        # below are sealed to it and each tip page opens its data key from the session's keys.
        password = secrets.token_urlsafe(16)
        with svc.db.session() as s:
            admin = create_user(s, svc.vault, email="bench-admin@example.org",
                                password=password, role="district_admin",
                                district_code="slps", must_change=False)
            staff = create_user(s, svc.vault, email="bench-staff@example.org",
                                password=password, role="school_staff",
                                school_codes=["slps-roosevelt"], must_change=False)
            admin.totp_confirmed = staff.totp_confirmed = True  # enrolment is not measured
            from tipline.accounts import keys

            personal = keys.unlock_personal_key(s, admin, password)
            assert personal is not None
            keys.grant_access(s, keys.keychain_for(s, admin.id, personal), admin, staff)
            admin_id, staff_id, admin_district = admin.id, staff.id, admin.district_id
        started = time.perf_counter()
        print(f"inserting {args.tips} tips", file=sys.stderr)
        with svc.db.sessions() as s:
            uids = insert_tips(s, svc.vault, args.tips, rng)
            s.execute(text("ANALYZE"))
            s.commit()
        print(f"inserted in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        with svc.db.session() as s:
            slps_uids = [u for (u,) in s.execute(text(
                "SELECT uid FROM tips WHERE district_id = :d"), {"d": admin_district})]
            # The county's account comes after its tips: they keep the key-file slot (a
            # district that has not moved to sealing), the comparison for the sealed tip page.
            county = create_user(s, svc.vault, email="bench-county@example.org",
                                 password=password, role="district_admin",
                                 district_code="stlco-demo", must_change=False)
            county.totp_confirmed = True
            county_id = county.id
            county_uids = [u for (u,) in s.execute(text(
                "SELECT uid FROM tips WHERE district_id = :d"), {"d": county.district_id})]
        n = args.requests
        print("load average before measuring (1/5/15 min): "
              + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs")
        as_admin = _signed_in(app, admin_id, password)
        as_staff = _signed_in(app, staff_id, password)
        as_county = _signed_in(app, county_id, password)
        results = {
            "queue (admin, open)": _measure(as_admin, ["/staff/"] * n,
                                            "queue, district admin, open tips"),
            "queue (admin, all, deep page)": _measure(
                as_admin, [f"/staff/?status=all&page={rng.randint(50, 500)}" for _ in range(n)],
                "queue, district admin, all statuses, page 50-500"),
            "queue (admin, filtered)": _measure(
                as_admin, ["/staff/?status=all&school=slps-roosevelt&category=weapon"
                           "&from=2025-01-01"] * n,
                "queue, district admin, school+category+date"),
            "queue (school staff)": _measure(as_staff, ["/staff/"] * n,
                                             "queue, school staff, open tips"),
            "poll": _measure(as_admin, ["/staff/queue/state"] * n, "polling endpoint"),
            "tip page": _measure(as_admin, [f"/staff/tips/{rng.choice(slps_uids)}"
                                            for _ in range(n)],
                                 "tip page, random tips (audited read)"),
        }
        _sealed_vs_legacy(as_admin, slps_uids, as_county, county_uids, n, rng)
        with svc.db.session() as s:
            total = s.execute(text("SELECT count(*) FROM tips")).scalar_one()
            audits = s.execute(text("SELECT count(*) FROM audit_events WHERE action='tip.view'")
                               ).scalar_one()
        print(f"tips in database: {total}; audited tip reads: {audits}; uids sampled: "
              f"{len(uids)}")
        print("load average after measuring: "
              + " ".join(f"{x:.2f}" for x in os.getloadavg()))
        worst = max(r["p95"] for r in results.values())
        print(f"worst p95: {worst:.1f} ms (target <= {TARGET_MS:.0f} ms)")
    finally:
        svc.db.dispose()
        if not args.keep:
            _drop_database()


if __name__ == "__main__":
    main()
