"""The statements of the surge path, built once at import.

``route_job`` and ``deliver_alert`` run for every tip and every alert of a surge. Built per
call, each statement would also be hashed per call to find its compiled form in SQLAlchemy's
cache; built once, with bound parameters (``b_*``), the cache key is computed once per
process. They are plain table statements (no unit of work) and run on PostgreSQL and SQLite.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, literal_column, select, update
from sqlalchemy.orm import joinedload

from tipline.directory.models import Contact, School, contact_schools
from tipline.routing.models import (
    AlertDelivery,
    DeliveryStatus,
    Dispatch,
    JobStatus,
    RoutingJob,
    RoutingPolicy,
)
from tipline.tips.models import Tip


def table(model: type[Any]) -> Table:
    """A model's table, for plain statements."""
    return cast(Table, model.__table__)


_jobs, _dispatches, _deliveries = table(RoutingJob), table(Dispatch), table(AlertDelivery)
_contacts, _tips, _schools = table(Contact), table(Tip), table(School)
_policies = table(RoutingPolicy)

# -- routing --------------------------------------------------------------------------------
# The pending job's tip with its school and district (b_job).
PENDING_TIP = (
    select(Tip, _jobs.c.reason)
    .join(_jobs, _jobs.c.tip_id == Tip.id)
    .where(_jobs.c.id == bindparam("b_job"), _jobs.c.status == JobStatus.PENDING.value)
    .options(joinedload(Tip.school), joinedload(Tip.district))
)

# The claim: pending -> b_status (done, or failed when nobody matched), with the explanation.
CLAIM_JOB = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("b_job"), _jobs.c.status == JobStatus.PENDING.value)
    .values(status=bindparam("b_status"), attempts=_jobs.c.attempts + 1,
            started_at=bindparam("b_now"), finished_at=bindparam("b_now"),
            explanation=bindparam("b_explanation", type_=_jobs.c.explanation.type),
            last_error=bindparam("b_error"))
)

# Multi-row inserts; ids come back in the order of the rows given.
INSERT_DISPATCHES = insert(_dispatches).returning(_dispatches.c.id,
                                                  sort_by_parameter_order=True)
INSERT_DELIVERIES = insert(_deliveries).returning(_deliveries.c.id,
                                                  sort_by_parameter_order=True)

# The newest active policy's identity (the parsed policy is cached per version).
# The LIMIT is written into the statement, not sent as a parameter: intake's guarded insert
# embeds this query and must stay within psycopg's parameter count (routing.audience).
ACTIVE_POLICY_HEAD = (
    select(_policies.c.id, _policies.c.version, _policies.c.sha256)
    .where(_policies.c.active.is_(True))
    .order_by(_policies.c.version.desc()).limit(literal_column("1"))
)

# Every contact a plan for one school can name: the school's (flagged ``here``), the
# district's, and those named by key (b_school, b_district, b_named).
_at_school = select(contact_schools.c.contact_id).where(
    contact_schools.c.school_id == bindparam("b_school")
)
PLAN_CONTACTS = (
    select(_contacts, _contacts.c.id.in_(_at_school).label("here"))
    .where(
        _contacts.c.id.in_(_at_school)
        | (_contacts.c.district_id == bindparam("b_district"))
        | _contacts.c.key.in_(bindparam("b_named", expanding=True))
    )
    .order_by(_contacts.c.priority, _contacts.c.id)
)

# -- delivery -------------------------------------------------------------------------------
# Recorded before sending: pending -> sending (b_delivery, b_now).
CLAIM_DELIVERY = (
    update(_deliveries)
    .where(_deliveries.c.id == bindparam("b_delivery"),
           _deliveries.c.status == DeliveryStatus.PENDING.value)
    .values(status=DeliveryStatus.SENDING.value, attempts=_deliveries.c.attempts + 1,
            updated_at=bindparam("b_now"))
)



def _alert_facts(delivery: Any) -> Any:
    """Everything one alert needs, as plain columns, for ``delivery`` (the table, or the
    claim below): its channel and attempts, the dispatch, the contact, the tip and school."""
    return (
        select(delivery.c.channel, delivery.c.attempts,
               delivery.c.created_at.label("delivery_created"),
               _dispatches.c.repeat_every_seconds,
               _dispatches.c.status.label("dispatch_status"), _dispatches.c.channels,
               _dispatches.c.include_content, _dispatches.c.ack_code, _contacts.c.sms_number,
               _contacts.c.voice_number, _contacts.c.email, _contacts.c.active,
               _tips.c.id.label("tip_id"), _tips.c.reference, _tips.c.category,
               _tips.c.severity, _schools.c.name.label("school_name"),
               # revision 0014: the reporter's language, and a partner's agreement
               _tips.c.language, _contacts.c.kind.label("contact_kind"),
               _contacts.c.agreement.label("contact_agreement"))
        .select_from(delivery.join(_dispatches, _dispatches.c.id == delivery.c.dispatch_id)
                     .join(_contacts, _contacts.c.id == _dispatches.c.contact_id)
                     .join(_tips, _tips.c.id == _dispatches.c.tip_id)
                     .outerjoin(_schools, _schools.c.id == _tips.c.school_id))
    )


# After CLAIM_DELIVERY, in the same transaction (b_delivery).
ALERT_FACTS = _alert_facts(_deliveries).where(_deliveries.c.id == bindparam("b_delivery"))

# PostgreSQL: the claim and the read in one round trip (an UPDATE ... RETURNING in a WITH);
# no row when the delivery was not pending. SQLite cannot update inside WITH.
_claimed = CLAIM_DELIVERY.returning(_deliveries.c.dispatch_id, _deliveries.c.channel,
                                    _deliveries.c.attempts,
                                    _deliveries.c.created_at).cte("claimed")
CLAIM_AND_READ = _alert_facts(_claimed)

# Compare-and-set after sending: sending -> sent (b_delivery, b_now, b_provider, b_ref).
MARK_SENT = (
    update(_deliveries)
    .where(_deliveries.c.id == bindparam("b_delivery"),
           _deliveries.c.status == DeliveryStatus.SENDING.value)
    .values(status=DeliveryStatus.SENT.value, sent_at=bindparam("b_now"),
            provider=bindparam("b_provider"), provider_ref=bindparam("b_ref"),
            updated_at=bindparam("b_now"))
)

# A status callback got there first: keep its status, record the provider's reference.
RECORD_REFERENCE = (
    update(_deliveries)
    .where(_deliveries.c.id == bindparam("b_delivery"), _deliveries.c.provider_ref.is_(None))
    .values(sent_at=bindparam("b_now"), provider=bindparam("b_provider"),
            provider_ref=bindparam("b_ref"))
)
