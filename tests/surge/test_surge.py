"""A surge: 500 tips about one threat and 50 unrelated tips at one school in five minutes."""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from tests.surge import scenario
from tipline.db import utcnow
from tipline.routing.models import Dispatch, DispatchStatus
from tipline.surge import services as surge
from tipline.surge.models import TipSignature
from tipline.tips.models import Tip

# Alert chains one group can start: its first tip, one per severity raise (medium -> high ->
# life-safety: at most 3 above low) and one per new life-safety reason (the triage rules with a
# life-safety floor: 4). docs/alerts.md states this bound.
CHAIN_BOUND = 1 + 3 + 4


def test_surge_groups_the_threat_and_alerts_the_rest(db_session, vault, queue, demo_directory):
    items = scenario.tips(random.Random(14))
    start = utcnow()
    result = scenario.run(db_session, vault, queue, items, start)

    # Nothing lost: every tip stored and routed (alerted or folded).
    assert db_session.execute(select(func.count(Tip.id))).scalar_one() == 550
    assert result.not_routed == 0
    assert all(i.alerted or i.folded for i in items)

    # Grouping quality: the threat's tips in one group, no unrelated tip in it.
    lead_group = result.group_ids[items[0].tip_id]
    assert lead_group is not None
    threat = [i for i in items if i.kind != "unrelated"]
    in_group = [i for i in threat if result.group_ids[i.tip_id] == lead_group]
    recall = len(in_group) / len(threat)
    assert recall >= 0.95, recall
    unrelated = [i for i in items if i.kind == "unrelated"]
    assert not [i.text for i in unrelated if result.group_ids[i.tip_id] == lead_group]

    # Every unrelated tip alerted on its own.
    assert all(i.alerted for i in unrelated), [i.text for i in unrelated if not i.alerted]

    # Every tip more severe than what its group had alerted, or with a new life-safety
    # reason, alerted at once.
    seen_sev: dict[int, int] = {}
    seen_sig: dict[int, set[str]] = {}
    for item in threat:
        gid = result.group_ids[item.tip_id]
        sig = db_session.get(TipSignature, item.tip_id)
        if gid is None or sig is None:
            assert item.alerted
            continue
        new_reason = bool(set(sig.signals) - seen_sig.get(gid, set()))
        if int(item.severity) > seen_sev.get(gid, 0) or new_reason:
            assert item.alerted, (item.text, item.severity)
        if item.alerted:
            seen_sev[gid] = max(seen_sev.get(gid, 0), int(item.severity))
            seen_sig.setdefault(gid, set()).update(sig.signals)

    # The group's alerts stay within the documented bound: chains, and notices per contact.
    chains = sum(1 for i in in_group if i.alerted)
    assert chains <= CHAIN_BOUND, chains
    lead = db_session.get(Tip, items[0].tip_id)
    notices = Counter(db_session.execute(select(Dispatch.contact_id).where(
        Dispatch.tip_id == lead.id, Dispatch.status == DispatchStatus.NOTICE.value)).scalars())
    span = timedelta(minutes=5) + surge.NOTICE_EVERY
    per_contact = math.ceil(span / surge.NOTICE_EVERY) + 1
    assert notices and max(notices.values()) <= per_contact
    print(f"threat tips {len(threat)}, in the group {len(in_group)} (recall {recall:.3f}), "
          f"group alert chains {chains}, alerts total {result.alerts}, notices "
          f"{result.notices}, unrelated alerted {sum(i.alerted for i in unrelated)}/50")
