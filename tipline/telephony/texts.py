"""What the tip line says to texting and calling reporters, in English and Spanish.

Every message to a reporter carries the emergency guidance (911 now, 988 for a crisis). Kept
here rather than in the web's gettext catalogues because SMS and voice are answered outside
any browser locale, and both languages must always be complete.
"""

from __future__ import annotations

from tipline.tips.models import Category

LANGUAGES = ("en", "es")

CRISIS = {
    "en": "Danger right now: call 911. Suicide or crisis: call or text 988.",
    "es": "Si hay peligro ahora: llame al 911. Suicidio o crisis: llame o envíe un texto al 988.",
}

# The categories offered by number, in this order.
MENU: tuple[Category, ...] = (
    Category.WEAPON,
    Category.THREAT,
    Category.SELF_HARM,
    Category.BULLYING,
    Category.ABUSE,
    Category.SUBSTANCE,
    Category.FAMILY_CRISIS,
    Category.BASIC_NEEDS,
    Category.DATING_VIOLENCE,
    Category.OTHER,
)

CATEGORY_LABELS = {
    "en": {
        Category.WEAPON: "Weapon",
        Category.THREAT: "Threat or planned fight/violence",
        Category.SELF_HARM: "Someone may hurt themselves",
        Category.BULLYING: "Bullying",
        Category.ABUSE: "Abuse or neglect",
        Category.SUBSTANCE: "Drugs or alcohol",
        Category.FAMILY_CRISIS: "Family crisis",
        Category.BASIC_NEEDS: "No safe place to sleep, food or housing",
        Category.DATING_VIOLENCE: "Dating violence",
        Category.OTHER: "Something else",
    },
    "es": {
        Category.WEAPON: "Arma",
        Category.THREAT: "Amenaza o pelea/violencia planeada",
        Category.SELF_HARM: "Alguien podría hacerse daño",
        Category.BULLYING: "Acoso (bullying)",
        Category.ABUSE: "Abuso o negligencia",
        Category.SUBSTANCE: "Drogas o alcohol",
        Category.FAMILY_CRISIS: "Crisis familiar",
        Category.BASIC_NEEDS: "Sin lugar seguro para dormir, comida o vivienda",
        Category.DATING_VIOLENCE: "Violencia en el noviazgo",
        Category.OTHER: "Otra cosa",
    },
}

_SMS = {
    "en": {
        "received": "Tip line: we received your message. Do not share your name.",
        "ask_school": "Which school is this about? Reply with the school's name.",
        "school_noted": "School: {name}.",
        "ask_school_again": "We could not find that school. Reply with the school's name or "
                            "its code, or SKIP.",
        "ambiguous": "Which school do you mean? Reply with a number:",
        "ask_category": "What is it about? Reply with a number:",
        "ask_category_again": "Please reply with a number from 1 to 10:",
        "thanks": "Thank you. Staff will read your tip and may text you questions here. "
                  "You can add more anytime by texting this number.",
        "added": "Tip line: added to your tip.",
        "welcome": "Tip line: tell us what is happening and which school. Do not share "
                   "your name.",
        "help": "School safety tip line: report a safety concern at school without giving "
                "your name. Text what is happening and which school. Reply STOP to stop texts. "
                "Msg&data rates may apply.",
        "stopped": "Tip line: you will get no more texts from this number. Reply START to "
                   "text again.",
        "started": "Tip line: texts are on again. Tell us what is happening and which school.",
        "language": "Tip line: we will text you in English.",
        "unavailable": "Tip line: we could not save your message right now. Please try again "
                       "in a few minutes.",
        "held": "Tip line: your message is being saved; we will text you when it is. You do "
                "not need to send it again.",
    },
    "es": {
        "received": "Línea de avisos: recibimos su mensaje. No comparta su nombre.",
        "ask_school": "¿De qué escuela se trata? Responda con el nombre de la escuela.",
        "school_noted": "Escuela: {name}.",
        "ask_school_again": "No encontramos esa escuela. Responda con el nombre o el código "
                            "de la escuela, u OMITIR.",
        "ambiguous": "¿Qué escuela quiere decir? Responda con un número:",
        "ask_category": "¿De qué se trata? Responda con un número:",
        "ask_category_again": "Responda con un número del 1 al 10:",
        "thanks": "Gracias. El personal leerá su aviso y puede enviarle preguntas aquí. "
                  "Puede agregar más en cualquier momento enviando un texto a este número.",
        "added": "Línea de avisos: agregado a su aviso.",
        "welcome": "Línea de avisos: díganos qué está pasando y en qué escuela. No comparta "
                   "su nombre.",
        "help": "Línea de avisos de seguridad escolar: informe un problema de seguridad en la "
                "escuela sin dar su nombre. Escriba qué pasa y en qué escuela. Responda STOP "
                "para no recibir más textos. Pueden aplicarse tarifas.",
        "stopped": "Línea de avisos: no recibirá más textos de este número. Responda START "
                   "para volver a escribir.",
        "started": "Línea de avisos: los textos están activos otra vez. Díganos qué pasa y en "
                   "qué escuela.",
        "language": "Línea de avisos: le escribiremos en español.",
        "unavailable": "Línea de avisos: no pudimos guardar su mensaje ahora. Intente de nuevo "
                       "en unos minutos.",
        "held": "Línea de avisos: estamos guardando su mensaje; le escribiremos cuando esté "
                "guardado. No necesita enviarlo otra vez.",
    },
}


def lang(language: str | None) -> str:
    return language if language in LANGUAGES else "en"


def sms(key: str, language: str | None, *, crisis: bool = True) -> str:
    """One reply text; with the emergency guidance appended unless ``crisis`` is False."""
    code = lang(language)
    text = _SMS[code][key]
    return f"{text} {CRISIS[code]}" if crisis else text


def category_menu(language: str | None) -> str:
    labels = CATEGORY_LABELS[lang(language)]
    return "\n".join(f"{i} {labels[c]}" for i, c in enumerate(MENU, start=1))


VOICE_LANG = {"en": "en-US", "es": "es-MX"}

_VOICE = {
    "en": {
        "greeting": "You have reached the school safety tip line. If this is an emergency, "
                    "hang up and call 9 1 1. If you are thinking about suicide or are in "
                    "crisis, call or text 9 8 8.",
        "choose": "For English, press 1.",
        "notice": "If anyone is in danger right now, hang up and call 9 1 1. For a crisis, "
                  "call or text 9 8 8. "
                  "Your message will be recorded, and you do not have to give your name. "
                  "After the tone, say what is happening, which school, and when. "
                  "Press the pound key or hang up when you are done.",
        "nothing": "We did not hear a message. Please call again when you are ready. "
                   "In an emergency, call 9 1 1. For a crisis, call or text 9 8 8. Goodbye.",
        "received": "Thank you. Your message was received and will be sent to the people "
                    "who can help.",
        "code": "Your tip code is",
        "repeat": "Again, your tip code is",
        "code_use": "Write it down. Enter this code on the tip line website to read questions "
                    "from staff and answer them.",
        "bye": "If anyone is in danger right now, call 9 1 1. For a crisis, call or text "
               "9 8 8. Goodbye.",
        "unavailable": "We are sorry, the tip line cannot take messages right now. "
                       "In an emergency, call 9 1 1. For a crisis, call or text 9 8 8. "
                       "Please try again in a few minutes.",
    },
    "es": {
        "greeting": "Ha llamado a la línea de avisos de seguridad escolar. Si es una "
                    "emergencia, cuelgue y llame al 9 1 1. Si está pensando en el suicidio o "
                    "está en crisis, llame o envíe un texto al 9 8 8.",
        "choose": "Para español, oprima 2.",
        "notice": "Si alguien está en peligro ahora, cuelgue y llame al 9 1 1. Para una "
                  "crisis, llame o envíe un texto al 9 8 8. "
                  "Su mensaje será grabado y no tiene que decir su nombre. Después del tono, "
                  "diga qué está pasando, en qué escuela y cuándo. Oprima la tecla de numeral "
                  "o cuelgue cuando termine.",
        "nothing": "No escuchamos un mensaje. Llame otra vez cuando esté listo. En una "
                   "emergencia, llame al 9 1 1. Para una crisis, llame o envíe un texto al 9 8 8. "
                   "Adiós.",
        "received": "Gracias. Recibimos su mensaje y lo enviaremos a las personas que pueden "
                    "ayudar.",
        "code": "Su código de aviso es",
        "repeat": "Otra vez, su código de aviso es",
        "code_use": "Anótelo. Escriba este código en el sitio web de la línea de avisos para "
                    "leer las preguntas del personal y responderlas.",
        "bye": "Si alguien está en peligro ahora, llame al 9 1 1. Para una crisis, llame o "
               "envíe un texto al 9 8 8. Adiós.",
        "unavailable": "Lo sentimos, la línea de avisos no puede recibir mensajes ahora. En "
                       "una emergencia, llame al 9 1 1. Para una crisis, llame o envíe un "
                       "texto al 9 8 8. Intente de nuevo en unos minutos.",
    },
}


def voice(key: str, language: str | None) -> str:
    return _VOICE[lang(language)][key]


def spoken_digits(code: str) -> str:
    """'1234-5678' -> '1 2 3 4, 5 6 7 8' so text-to-speech reads digits one by one."""
    groups = [g for g in code.split("-") if g]
    return ", ".join(" ".join(group) for group in groups)
