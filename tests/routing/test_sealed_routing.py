"""Routing sealed tips: intake seals to the district and the police the policy alerts, workers
route and alert without any key, include_content alerts carry the text composed at intake, and
re-triage moves the police agency's access with the tip's routing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.factories import make_tip
from tests.keysupport import reader
from tests.routing.delivery_support import RecordingSender
from tipline.crypto import SEALED_ONLY, KeyUnavailable, current_keychain, using
from tipline.db import utcnow
from tipline.directory.models import Contact
from tipline.jobs import RecordingQueue
from tipline.routing.audience import sealed_agency_ids
from tipline.routing.engine import PolicyPlanner
from tipline.routing.models import AlertDelivery, Dispatch
from tipline.routing.policy import active_policy, load_policy
from tipline.routing.services import deliver_alert, route_job
from tipline.tips.models import Category, Severity, Tip
from tipline.triage import services as triage

POLICY = """\
policy: sealing test policy
no_school:
  ack_within: 10m
  life_safety_repeat_every: 2m
districts:
  slps:
    school_hours:
      - {days: mon-fri, start: "07:00", end: "17:00"}
    fallback: [slps-oncall]
    rules:
      - name: weapons-to-police
        priority: 100
        match: {categories: [weapon]}
        steps:
          - alert: [{contact: slps-safety-desk}, {contact: slpd-liaison}]
            channels: [sms]
            ack_within: 5m
            include_content: true
      - name: everything-else
        default: true
        steps:
          - alert: [{role: counselor}]
            channels: [sms]
            ack_within: 60m
"""
WEAPON_TEXT = "He showed a gun in locker 214 before lunch"
BULLY_TEXT = "They push him into the lockers every day"


@pytest.fixture
def sealed(db_session: Any, vault: Any, demo_directory: Any) -> dict[str, Any]:
    """The test policy, a district admin of slps and the SLPD liaison, each with access."""
    load_policy(db_session, POLICY, "sealing.yaml", loaded_by="test")
    admin, admin_chain = reader(db_session, vault, "slps")
    liaison, liaison_chain = reader(db_session, vault, role="police_liaison", district=None,
                                    contact="slpd-liaison")
    db_session.commit()
    slpd = db_session.execute(select(Contact.agency_id).where(
        Contact.key == "slpd-liaison")).scalar_one()
    return {"admin": admin, "admin_chain": admin_chain, "liaison": liaison,
            "liaison_chain": liaison_chain, "slpd": slpd}


def _tip(session: Any, vault: Any, queue: Any, body: str, category: Category) -> Tip:
    r = make_tip(session, vault, queue, body=body, school_code="slps-roosevelt",
                 category=category, severity=Severity.HIGH)
    session.commit()
    tip = session.get(Tip, r.tip_id)
    assert tip is not None
    return tip


def _kinds(tip: Tip) -> list[str]:
    assert tip.data_key is not None
    return [s["kind"] for s in json.loads(tip.data_key.slots)["slots"]]


def _route_and_send(session: Any, tip: Tip, queue: RecordingQueue) -> list[Any]:
    """What the routing and delivery workers do, with no keychain at all."""
    assert len(current_keychain()) == 0
    job = next(args[0] for name, args in queue.sent if name == "tipline.route_job")
    policy = active_policy(session)
    assert policy is not None
    assert route_job(session, job, PolicyPlanner(policy), queue, utcnow()).routed
    sender = RecordingSender()
    ids = session.execute(select(AlertDelivery.id).join(Dispatch).where(
        Dispatch.tip_id == tip.id)).scalars().all()
    for dl_id in ids:
        deliver_alert(session, dl_id, {"sms": sender, "voice": sender, "email": sender},
                      utcnow())
    return sender.sent


def test_weapon_tip_is_sealed_to_district_and_police_and_workers_never_read_it(
        db_session, vault, sealed) -> None:
    queue = RecordingQueue()
    tip = _tip(db_session, vault, queue, WEAPON_TEXT, Category.WEAPON)
    assert tip.data_key is not None and tip.data_key.kek_id == SEALED_ONLY
    assert set(_kinds(tip)) == {"x25519"}  # no slot the key file opens
    assert sealed_agency_ids(tip.data_key.slots) == {sealed["slpd"]}
    rids = [s["rid"] for s in json.loads(tip.data_key.slots)["slots"]]
    assert any(r.startswith("district:") for r in rids) and f"code:{tip.uid}" in rids
    with pytest.raises(KeyUnavailable):
        _ = tip.messages[0].body
    alerts = _route_and_send(db_session, tip, queue)
    assert len(alerts) == 2
    # include_content: composed at intake, so the alert still carries the words.
    assert all(WEAPON_TEXT in a.text for a in alerts)
    assert all(WEAPON_TEXT not in (a.stored_text or "") for a in alerts)
    for chain in (sealed["admin_chain"], sealed["liaison_chain"]):
        db_session.expire_all()
        with using(chain):
            assert db_session.get(Tip, tip.id).messages[0].body == WEAPON_TEXT


def test_a_tip_police_are_not_routed_gets_no_police_slot_and_no_alert_text(
        db_session, vault, sealed) -> None:
    queue = RecordingQueue()
    tip = _tip(db_session, vault, queue, BULLY_TEXT, Category.BULLYING)
    assert tip.data_key is not None and sealed_agency_ids(tip.data_key.slots) == set()
    assert tip.alert_content_ct is None
    alerts = _route_and_send(db_session, tip, queue)
    assert alerts and all(BULLY_TEXT not in a.text for a in alerts)
    with using(sealed["liaison_chain"]), pytest.raises(KeyUnavailable):
        _ = tip.messages[0].body
    with using(sealed["admin_chain"]):
        assert tip.messages[0].body == BULLY_TEXT


def test_retriage_to_police_gives_the_liaison_access_and_back_removes_it(
        db_session, vault, sealed) -> None:
    queue = RecordingQueue()
    tip = _tip(db_session, vault, queue, BULLY_TEXT, Category.BULLYING)
    admin = sealed["admin"]
    with using(sealed["admin_chain"]):
        triage.retriage(db_session, queue, admin, tip, category=Category.WEAPON.value,
                        severity=int(Severity.HIGH), reason="he has a gun after all",
                        now=utcnow())
    db_session.commit()
    db_session.expire_all()
    tip = db_session.get(Tip, tip.id)
    assert sealed_agency_ids(tip.data_key.slots) == {sealed["slpd"]}
    from tests.keysupport import staff_chain

    with using(staff_chain(db_session, sealed["liaison"])):
        assert tip.messages[0].body == BULLY_TEXT
    with using(sealed["admin_chain"]):
        triage.retriage(db_session, queue, admin, tip, category=Category.BULLYING.value,
                        severity=int(Severity.HIGH), reason="no gun: a phone", now=utcnow())
    db_session.commit()
    db_session.expire_all()
    tip = db_session.get(Tip, tip.id)
    assert sealed_agency_ids(tip.data_key.slots) == set()
    with using(staff_chain(db_session, sealed["liaison"])), pytest.raises(KeyUnavailable):
        _ = tip.messages[0].body
    with using(staff_chain(db_session, admin)):
        assert tip.messages[0].body == BULLY_TEXT


def test_retriage_by_someone_whose_keys_cannot_open_the_tip_is_refused(
        db_session, vault, sealed) -> None:
    queue = RecordingQueue()
    tip = _tip(db_session, vault, queue, BULLY_TEXT, Category.BULLYING)
    with pytest.raises(triage.ActionRefused, match="grant you access"):
        triage.retriage(db_session, queue, sealed["admin"], tip,
                        category=Category.WEAPON.value, severity=int(Severity.HIGH),
                        reason="outside a session", now=utcnow())


def test_legacy_mode_without_a_district_key_is_unchanged(db_session, vault,
                                                         demo_directory) -> None:
    load_policy(db_session, POLICY, "sealing.yaml", loaded_by="test")
    db_session.commit()
    queue = RecordingQueue()
    tip = _tip(db_session, vault, queue, WEAPON_TEXT, Category.WEAPON)
    assert _kinds(tip) == ["kek"] and tip.data_key.kek_id == vault.active_key_id
    assert tip.messages[0].body == WEAPON_TEXT  # the key file opens it, as before
    alerts = _route_and_send(db_session, tip, queue)
    assert alerts and all(WEAPON_TEXT in a.text for a in alerts)


def test_policy_text_is_the_one_the_docs_describe() -> None:
    # The include_content rule above is a plain policy file: it parses as docs/routing.md says.
    from tipline.routing.policy import parse_policy

    parsed = parse_policy(POLICY, str(Path("sealing.yaml")))
    assert [s.include_content for s in parsed.districts["slps"].rules[0].steps] == [True]


def test_police_alerted_after_intake_get_their_slot_when_district_staff_open_the_tip(
        db_session, vault, sealed) -> None:
    """An SMS answer (or a transcript) makes the tip a weapon tip after intake sealed it: the
    re-route alerts police, who cannot read it yet; the next district staff member to open it
    seals it to the agency."""
    from tests.keysupport import staff_chain
    from tipline.telephony.store import reroute

    queue = RecordingQueue()
    tip = _tip(db_session, vault, queue, BULLY_TEXT, Category.BULLYING)
    tip.category = Category.WEAPON.value  # what the SMS category answer does
    job = reroute(db_session, queue, tip.id)
    db_session.commit()
    policy = active_policy(db_session)
    assert route_job(db_session, job, PolicyPlanner(policy), queue, utcnow()).routed
    liaison = sealed["liaison"]
    with using(staff_chain(db_session, liaison)), pytest.raises(KeyUnavailable):
        _ = db_session.get(Tip, tip.id).messages[0].body
    with using(staff_chain(db_session, sealed["admin"])):
        triage.read_tip(db_session, sealed["admin"], tip.uid, utcnow())
    db_session.commit()
    db_session.expire_all()
    tip = db_session.get(Tip, tip.id)
    assert sealed_agency_ids(tip.data_key.slots) == {sealed["slpd"]}
    with using(staff_chain(db_session, liaison)):
        assert tip.messages[0].body == BULLY_TEXT


def test_opening_a_tip_retriaged_away_from_police_before_it_is_routed_again_seals_nothing(
        db_session, vault, sealed) -> None:
    """The page a re-triage leads back to opens the tip before the routing worker has taken
    the new job: the old job's police dispatches are not the tip's routing any more, so the
    agency the re-triage removed does not get its slot back."""
    from tests.keysupport import staff_chain

    queue = RecordingQueue()
    tip = _tip(db_session, vault, queue, WEAPON_TEXT, Category.WEAPON)
    assert _route_and_send(db_session, tip, queue)
    db_session.commit()
    with using(sealed["admin_chain"]):
        triage.retriage(db_session, queue, sealed["admin"], tip,
                        category=Category.BULLYING.value, severity=int(Severity.HIGH),
                        reason="no gun: a phone", now=utcnow())
    db_session.commit()
    with using(staff_chain(db_session, sealed["admin"])):
        triage.read_tip(db_session, sealed["admin"], tip.uid, utcnow())
    db_session.commit()
    db_session.expire_all()
    tip = db_session.get(Tip, tip.id)
    assert sealed_agency_ids(tip.data_key.slots) == set()
    with using(staff_chain(db_session, sealed["liaison"])), pytest.raises(KeyUnavailable):
        _ = tip.messages[0].body
