"""What staff read for a tip's stored codes: one place, so the queue, the tip page, the
statistics and the routing matrix say "Self-harm or suicide", never ``self_harm``."""

from __future__ import annotations

SEVERITY_LABELS = {1: "Low", 2: "Medium", 3: "High", 4: "Life safety"}
CATEGORY_LABELS = {
    "weapon": "Weapon", "threat": "Threat of violence", "self_harm": "Self-harm or suicide",
    "bullying": "Bullying", "abuse": "Abuse or neglect", "substance": "Drugs or alcohol",
    "family_crisis": "Family crisis", "basic_needs": "Basic needs (sleep, food, housing)",
    "dating_violence": "Dating violence", "other": "Other",
}
CHANNEL_LABELS = {"web": "Web", "sms": "SMS", "voice": "Voice"}
# Directory contact roles (``tipline.directory.validation.ROLES``) as staff say them.
ROLE_LABELS = {
    "counselor": "counselor", "social_worker": "social worker", "safety_team": "safety team",
    "principal": "principal", "district_oncall": "district on-call",
    "police_liaison": "police liaison", "family_specialist": "family specialist",
    "district_admin_desk": "district office", "transition_team": "students-in-transition team",
    "outside_partner": "outside partner", "interpreter": "interpreter",
}
NO_SCHOOL_LABEL = "No school named"


def severity_label(value: object) -> str:
    try:
        return SEVERITY_LABELS.get(int(str(value)), str(value))
    except ValueError:
        return str(value)


def category_label(value: str) -> str:
    return CATEGORY_LABELS.get(value, value.replace("_", " "))


def channel_label(value: str) -> str:
    return CHANNEL_LABELS.get(value, value)


def role_label(value: str | None) -> str:
    return ROLE_LABELS.get(value or "", (value or "").replace("_", " "))
