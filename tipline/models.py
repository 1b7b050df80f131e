"""Imports every model so that ``Base.metadata`` is complete (Alembic, tests)."""

from tipline.accounts.models import Role, StaffUser, staff_schools
from tipline.audit.models import AuditEvent
from tipline.crypto.models import KeyGrant, KeySession, ReadKey, RecoveryKey, StaffKey
from tipline.db import Base
from tipline.directory.models import (
    Contact,
    District,
    OnCallRota,
    PoliceAgency,
    School,
    contact_schools,
)
from tipline.routing.models import (
    AlertDelivery,
    Dispatch,
    DispatchStatus,
    JobStatus,
    OutboxMessage,
    RoutingJob,
    RoutingPolicy,
)
from tipline.surge.models import TipGroup, TipSignature
from tipline.telephony.models import InboundEvent, SmsConversation, SmsOptOut, TelephonyTask
from tipline.tips.models import (
    Attachment,
    Category,
    Channel,
    DataKey,
    Message,
    Note,
    Severity,
    Status,
    Tip,
)
from tipline.triage.models import MandatedReport, TipEvent

__all__ = [
    "AlertDelivery",
    "Attachment",
    "AuditEvent",
    "Base",
    "Category",
    "Channel",
    "Contact",
    "DataKey",
    "Dispatch",
    "DispatchStatus",
    "District",
    "InboundEvent",
    "JobStatus",
    "KeyGrant",
    "KeySession",
    "MandatedReport",
    "Message",
    "Note",
    "OnCallRota",
    "OutboxMessage",
    "PoliceAgency",
    "ReadKey",
    "RecoveryKey",
    "Role",
    "RoutingJob",
    "RoutingPolicy",
    "School",
    "Severity",
    "SmsConversation",
    "SmsOptOut",
    "StaffKey",
    "StaffUser",
    "Status",
    "TelephonyTask",
    "Tip",
    "TipEvent",
    "TipGroup",
    "TipSignature",
    "contact_schools",
    "staff_schools",
]
