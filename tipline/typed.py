"""Numbers as people type them: on a phone's keypad, a keyboard of another script, pasted."""

from __future__ import annotations

# Ids are 32-bit signed INTEGER columns: nine digits always fit.
MAX_DIGITS = 9


def typed_number(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """The whole number ``text`` is, in any script's decimal digits ("3", "٣"), or None.

    ``str.isdigit()`` is also true of superscripts and circled numbers ("²", "①"), which
    ``int()`` refuses with a ValueError, and ``int()`` refuses more than 4,300 digits: a reply
    of either kind to the SMS menu was lost with a 500, so every number a person types is read
    through this instead."""
    if 0 < len(text) <= max_digits and text.isdecimal():
        return int(text)
    return None
