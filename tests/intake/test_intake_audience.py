"""Intake's plan is cached, but never trusted past a change: the policy's head and the read keys
come back with every tip, so a new policy or a new key reaches the very next tip's seal."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from tests.factories import make_tip
from tests.keysupport import reader
from tests.routing.test_sealed_routing import POLICY, WEAPON_TEXT
from tipline.crypto.models import Owner, ReadKey
from tipline.crypto.sealing import new_private_key, public_bytes
from tipline.db import utcnow
from tipline.directory.models import Contact
from tipline.routing.audience import sealed_agency_ids
from tipline.routing.policy import load_policy
from tipline.tips.models import Category, Severity, Tip

# The same policy, with weapons no longer routed to the police liaison.
NO_POLICE = POLICY.replace("{contact: slps-safety-desk}, {contact: slpd-liaison}",
                           "{contact: slps-safety-desk}")


@pytest.fixture
def slpd(db_session: Any, vault: Any, demo_directory: Any) -> int:
    """slps and the SLPD liaison's agency each have a read key; the agency's id."""
    reader(db_session, vault, "slps")
    reader(db_session, vault, role="police_liaison", district=None, contact="slpd-liaison")
    db_session.commit()
    return int(db_session.execute(select(Contact.agency_id).where(
        Contact.key == "slpd-liaison")).scalar_one())


def _weapon_tip_rids(session: Any, vault: Any, queue: Any) -> list[str]:
    r = make_tip(session, vault, queue, body=WEAPON_TEXT, school_code="slps-roosevelt",
                 category=Category.WEAPON, severity=Severity.HIGH)
    session.commit()
    tip = session.get(Tip, r.tip_id)
    assert tip is not None and tip.data_key is not None
    return [s["rid"] for s in json.loads(tip.data_key.slots)["slots"]]


def _agencies(rids: list[str]) -> set[int]:
    return sealed_agency_ids(json.dumps({"slots": [{"rid": r} for r in rids]}))


def test_a_policy_that_stops_routing_to_police_stops_the_next_seal(
        db_session, vault, queue, slpd) -> None:
    load_policy(db_session, POLICY, "police.yaml", loaded_by="test")
    db_session.commit()
    assert _agencies(_weapon_tip_rids(db_session, vault, queue)) == {slpd}
    assert _agencies(_weapon_tip_rids(db_session, vault, queue)) == {slpd}  # cached plan
    load_policy(db_session, NO_POLICE, "no-police.yaml", loaded_by="test")
    db_session.commit()
    rids = _weapon_tip_rids(db_session, vault, queue)  # same minute, same place, same kind
    assert _agencies(rids) == set() and any(r.startswith("district:") for r in rids)


def test_a_policy_that_starts_routing_to_police_seals_the_next_tip_to_them(
        db_session, vault, queue, slpd) -> None:
    load_policy(db_session, NO_POLICE, "no-police.yaml", loaded_by="test")
    db_session.commit()
    assert _agencies(_weapon_tip_rids(db_session, vault, queue)) == set()
    assert _agencies(_weapon_tip_rids(db_session, vault, queue)) == set()  # cached plan
    load_policy(db_session, POLICY, "police.yaml", loaded_by="test")
    db_session.commit()
    assert _agencies(_weapon_tip_rids(db_session, vault, queue)) == {slpd}


def test_a_new_or_retired_agency_key_reaches_the_next_seal(
        db_session, vault, queue, slpd) -> None:
    load_policy(db_session, POLICY, "police.yaml", loaded_by="test")
    db_session.commit()
    first = [r for r in _weapon_tip_rids(db_session, vault, queue) if r.startswith("agency:")]
    old = db_session.execute(select(ReadKey).where(
        ReadKey.owner == Owner.AGENCY.value, ReadKey.owner_id == slpd,
        ReadKey.retired_at.is_(None))).scalar_one()
    assert first == [old.rid]
    old.retired_at = utcnow()
    new = ReadKey(owner=Owner.AGENCY.value, owner_id=slpd, key_id="rotated",
                  public_key=public_bytes(new_private_key()))
    db_session.add(new)
    db_session.commit()
    assert [r for r in _weapon_tip_rids(db_session, vault, queue)
            if r.startswith("agency:")] == [new.rid]
    new.retired_at = utcnow()  # no active key: the agency adds nothing
    db_session.commit()
    assert _agencies(_weapon_tip_rids(db_session, vault, queue)) == set()


def test_a_cached_plan_costs_one_statement_for_the_policy_and_every_key(
        db_session, vault, queue, slpd) -> None:
    from tests.intake.test_intake_statements import _statements

    load_policy(db_session, POLICY, "police.yaml", loaded_by="test")
    db_session.commit()
    _weapon_tip_rids(db_session, vault, queue)  # plans, and caches the plan
    with _statements(db_session) as seen:
        rids = _weapon_tip_rids(db_session, vault, queue)
    assert _agencies(rids) == {slpd}
    reads = [s for s in seen if "read_keys" in s]
    assert len(reads) == 1 and "routing_policies" in reads[0]


def test_a_plan_that_failed_is_not_reused_for_the_next_tip(
        db_session, vault, queue, slpd, monkeypatch) -> None:
    """A policy read that fails once seals that tip to the district only (as before); the
    next tip of the same place, kind and minute is planned again, not given the failed
    plan, so police the worker alerts can read it."""
    from tipline.routing import policy as routing_policy

    load_policy(db_session, POLICY, "police.yaml", loaded_by="test")
    db_session.commit()
    real = routing_policy.policy_at_head
    calls = []

    def flaky(session: Any, head: Any) -> Any:
        calls.append(head)
        if len(calls) == 1:
            raise RuntimeError("policy store unavailable")
        return real(session, head)

    monkeypatch.setattr(routing_policy, "policy_at_head", flaky)
    assert _agencies(_weapon_tip_rids(db_session, vault, queue)) == set()
    assert _agencies(_weapon_tip_rids(db_session, vault, queue)) == {slpd}
    assert len(calls) == 2


def test_a_plan_whose_engine_failed_is_not_reused_for_the_next_tip(
        db_session, vault, queue, slpd, monkeypatch) -> None:
    from tipline.routing import engine

    load_policy(db_session, POLICY, "police.yaml", loaded_by="test")
    db_session.commit()
    real = engine.plan_for_place
    calls = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("engine failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "plan_for_place", flaky)
    assert _agencies(_weapon_tip_rids(db_session, vault, queue)) == set()
    assert _agencies(_weapon_tip_rids(db_session, vault, queue)) == {slpd}


def test_a_directory_change_reaches_the_seal_once_the_cached_plan_expires(
        db_session, vault, queue, slpd, monkeypatch) -> None:
    """The directory has no version in the head statement: a contact that leaves its agency
    stops sealing tips to that agency once the cached plan is past PLAN_TTL (docs/crypto.md,
    "Which police agencies a tip is sealed to")."""
    import tipline.routing.audience as audience

    load_policy(db_session, POLICY, "police.yaml", loaded_by="test")
    db_session.commit()
    assert _agencies(_weapon_tip_rids(db_session, vault, queue)) == {slpd}
    liaison = db_session.execute(select(Contact).where(
        Contact.key == "slpd-liaison")).scalar_one()
    liaison.agency_id = None
    db_session.commit()
    monkeypatch.setattr(audience, "PLAN_TTL", 0.0)  # as if PLAN_TTL had passed
    assert _agencies(_weapon_tip_rids(db_session, vault, queue)) == set()


def test_a_guarded_insert_stays_within_what_psycopg_caches(
        db_session, vault, queue, slpd, monkeypatch) -> None:
    """A tip sealed from a kept audience is written by one statement that also checks the
    audience; psycopg parses a statement once only while it is at most
    MAX_CACHED_STATEMENT_LENGTH long with at most MAX_CACHED_STATEMENT_PARAMS parameters, and
    parsing it for every tip cost more (0.27 ms) than the guard saved. A police tip (an
    agency in the audience) with its surge signature is the largest such statement."""
    from psycopg import _queries

    load_policy(db_session, POLICY, "police.yaml", loaded_by="test")
    db_session.commit()
    _weapon_tip_rids(db_session, vault, queue)  # plans; reads the agency's key apart
    _weapon_tip_rids(db_session, vault, queue)  # reads the audience with the head; keeps it
    seen: list[tuple[int, int]] = []
    real = _queries.PostgresQuery.convert

    def convert(self: Any, query: Any, params: Any) -> None:
        if "array_agg" in (query.decode() if isinstance(query, bytes) else str(query)):
            seen.append((len(query), len(params or ())))
        real(self, query, params)

    monkeypatch.setattr(_queries.PostgresQuery, "convert", convert)
    assert _agencies(_weapon_tip_rids(db_session, vault, queue)) == {slpd}
    assert len(seen) == 1, seen
    length, params = seen[0]
    assert length <= _queries.MAX_CACHED_STATEMENT_LENGTH, length
    assert params <= _queries.MAX_CACHED_STATEMENT_PARAMS, params
