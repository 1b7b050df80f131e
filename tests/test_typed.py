"""Numbers and codes as people type them (tipline/typed.py), and the code readers that use it."""

from __future__ import annotations

import pytest

from tipline.tips.receipts import normalize_code
from tipline.typed import DB_INT_MAX, ascii_digits, typed_number

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.mark.parametrize(("text", "number"), [
    ("3", 3), ("007", 7), ("0", 0), ("٣", 3), ("1٢3", 123), ("0" * 5000, 0),
    (str(DB_INT_MAX), DB_INT_MAX), ("0000" + str(DB_INT_MAX), DB_INT_MAX),
])
def test_a_typed_number_is_read(text: str, number: int) -> None:
    assert typed_number(text) == number


@pytest.mark.parametrize("text", [
    "", " 3", "3 ", "-1", "+1", "1.0", "x", "²", "①", "12²", "9" * 5000, "\u0660" * 5000,
    str(DB_INT_MAX + 1), "99999999999",
])
def test_what_is_not_a_number_a_row_can_have_is_none(text: str) -> None:
    """Superscripts and circled digits pass str.isdigit() and int() refuses them, as it
    refuses over 4,300 digits: each is None, never an exception."""
    assert typed_number(text) is None


def test_a_smaller_maximum() -> None:
    assert typed_number("10", maximum=10) == 10
    assert typed_number("11", maximum=10) is None


def test_ascii_digits() -> None:
    assert ascii_digits("٤٢-x²") == "42-x²"
    assert ascii_digits("plain 42") == "plain 42"


def test_a_receipt_code_typed_in_another_script_s_digits_is_the_same_code() -> None:
    digits = "1234-5678-9012-3456-7890"
    assert normalize_code(digits.translate(ARABIC_INDIC)) == normalize_code(digits) \
        == digits.replace("-", "")
    web = "7KQ2-M4ZB-0A9X-HHJ3"
    assert normalize_code(web.translate(ARABIC_INDIC)) == normalize_code(web) \
        == web.replace("-", "")
    assert normalize_code("1234-5678-9012-3456-789²") is None
