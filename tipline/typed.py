"""Numbers as people type them: on a phone's keypad, a keyboard of another script, pasted."""

from __future__ import annotations

import unicodedata

# Ids are PostgreSQL/SQLite INTEGER columns (32-bit signed in PostgreSQL).
DB_INT_MAX = 2**31 - 1


def typed_number(text: str, maximum: int = DB_INT_MAX) -> int | None:
    """The whole number ``text`` is, in any script's decimal digits ("3", "٣"), if it is at
    most ``maximum`` (by default the largest id a row can have); otherwise None.

    ``str.isdigit()`` is also true of superscripts and circled numbers ("²", "①"), which
    ``int()`` refuses with a ValueError, and ``int()`` refuses more than 4,300 digits: a reply
    of either kind to the SMS menu was lost with a 500, so every number a person types is read
    through this instead."""
    digits = text.lstrip("0") or text[-1:]
    if text and text.isdecimal() and len(digits) <= len(str(maximum)):
        value = int(digits)
        return value if value <= maximum else None
    return None


def ascii_digits(text: str) -> str:
    """``text`` with every decimal digit of any script written as its ASCII digit ("٤٢" ->
    "42"), everything else as it was: a code typed on another script's keyboard is the code."""
    if text.isascii():
        return text
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)
