"""Reply wording in the reporter's language: short templates per district, and the status lines.

A district admin keeps a few short replies per language (English, Spanish, Bosnian); staff pick
one on the tip page and edit it before sending. A district with no rows of its own for a
language gets ``DEFAULTS``. The wording is staff-written, not tip content, so it is not sealed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tipline.accounts.models import StaffUser
from tipline.audit.services import record
from tipline.triage.models import ReplyTemplate

TEMPLATE_LANGUAGES = ("en", "es", "bs")
MAX_TEMPLATES = 12
MAX_TEMPLATE_CHARS = 500

DEFAULTS: dict[str, tuple[str, ...]] = {
    "en": (
        "Thank you for telling us. A counselor is looking into this now.",
        "Can you tell us when and where this happened?",
        "Are you safe right now? If you are in danger, call 911. If you are thinking about "
        "hurting yourself, call or text 988.",
        "We have taken care of this. Thank you for speaking up.",
    ),
    "es": (
        "Gracias por avisarnos. Un consejero lo está revisando ahora.",
        "¿Puedes decirnos cuándo y dónde pasó esto?",
        "¿Estás a salvo ahora? Si estás en peligro, llama al 911. Si piensas en hacerte daño, "
        "llama o envía un mensaje al 988.",
        "Ya nos encargamos de esto. Gracias por hablar.",
    ),
    "bs": (
        "Hvala što ste nam rekli. Savjetnik se upravo bavi ovim.",
        "Možete li nam reći kada i gdje se ovo desilo?",
        "Jeste li sada na sigurnom? Ako ste u opasnosti, nazovite 911. Ako razmišljate o "
        "samopovređivanju, nazovite ili pošaljite poruku na 988.",
        "Riješili smo ovo. Hvala što ste progovorili.",
    ),
}

# The status line the reporter sees on the follow-up page, offered in the tip's language.
STATUS_PRESETS: dict[str, tuple[str, ...]] = {
    "en": ("We are looking into this.", "We have a question for you below.",
           "Resolved: thank you."),
    "es": ("Estamos revisando esto.", "Tenemos una pregunta para ti abajo.",
           "Resuelto: gracias."),
    "bs": ("Bavimo se ovim.", "Imamo pitanje za vas ispod.", "Riješeno: hvala."),
}


class TemplatesRefused(ValueError):
    """The templates are not valid as given; the message is safe to show."""


def templates_for(session: Session, district_id: int | None, language: str) -> list[str]:
    """The district's replies in ``language`` (its own, else the defaults)."""
    lang = language if language in TEMPLATE_LANGUAGES else "en"
    if district_id is not None:
        own = list(session.execute(
            select(ReplyTemplate.text).where(ReplyTemplate.district_id == district_id,
                                             ReplyTemplate.language == lang)
            .order_by(ReplyTemplate.position)).scalars())
        if own:
            return own
    return list(DEFAULTS[lang])


def status_presets(language: str) -> list[str]:
    """The reporter status lines in ``language``, English ones after them when it is not."""
    lang = language if language in STATUS_PRESETS else "en"
    return list(STATUS_PRESETS[lang]) + ([] if lang == "en" else list(STATUS_PRESETS["en"]))


def parse_lines(text: str) -> list[str]:
    """One template per non-empty line."""
    lines = [" ".join(x.split()) for x in (text or "").splitlines()]
    lines = [x for x in lines if x]
    if len(lines) > MAX_TEMPLATES:
        raise TemplatesRefused(f"At most {MAX_TEMPLATES} replies per language.")
    long = [x for x in lines if len(x) > MAX_TEMPLATE_CHARS]
    if long:
        raise TemplatesRefused(f"Each reply must be at most {MAX_TEMPLATE_CHARS} characters.")
    return lines


def save_templates(session: Session, user: StaffUser, district_id: int, language: str,
                   lines: list[str], now: datetime) -> None:
    """Replace the district's replies in one language (an empty list restores the defaults);
    audited. The caller checks that ``user`` administers ``district_id``."""
    if language not in TEMPLATE_LANGUAGES:
        raise TemplatesRefused("Choose English, Spanish or Bosnian.")
    session.execute(delete(ReplyTemplate).where(ReplyTemplate.district_id == district_id,
                                                ReplyTemplate.language == language))
    for i, line in enumerate(lines):
        session.add(ReplyTemplate(district_id=district_id, language=language, position=i,
                                  text=line, updated_at=now, updated_by_id=user.id))
    record(session, "district.reply_templates", actor=f"user:{user.id}",
           actor_user_id=user.id, object_type="district", object_id=district_id,
           detail={"language": language, "count": len(lines)})
