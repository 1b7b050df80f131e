"""Small units of the reporter side: school search, submission ids, triage glue, upload buffers."""

from __future__ import annotations

import io
import re

import pytest
from werkzeug.datastructures import FileStorage

from tipline.intake import triage
from tipline.intake.directory_view import (
    SchoolEntry,
    group_schools,
    hotline_lines,
    last_known_hotlines,
    load_schools,
)
from tipline.intake.idempotency import (
    new_nonce,
    new_session_secret,
    submission_ids,
    valid_session_secret,
    verified_nonce,
)
from tipline.intake.uploads import CappedUpload, UploadLimits, UploadRefused, read_images
from tipline.tips.models import Category, Severity
from tipline.tips.receipts import normalize_code

ENTRIES = [
    SchoolEntry("a", "Roosevelt High School", "Saint Louis Public Schools",
                "roosevelt high school roosevelt, rhs saint louis public schools"),
    SchoolEntry("b", "Long International Middle School", "Saint Louis Public Schools",
                "long international middle school emina hodzic saint louis public schools"),
    SchoolEntry("c", "Northview High School (demo)", "County District",
                "northview high school (demo) nhs county district"),
]


def test_group_schools_narrows_by_every_word_and_keeps_the_chosen_one() -> None:
    assert group_schools(ENTRIES) == [
        ("Saint Louis Public Schools", [("a", "Roosevelt High School"),
                                        ("b", "Long International Middle School")]),
        ("County District", [("c", "Northview High School (demo)")]),
    ]
    assert group_schools(ENTRIES, "ROOS") == [
        ("Saint Louis Public Schools", [("a", "Roosevelt High School")])]
    assert group_schools(ENTRIES, "Hodžić") == [
        ("Saint Louis Public Schools", [("b", "Long International Middle School")])]
    assert group_schools(ENTRIES, "high county") == [
        ("County District", [("c", "Northview High School (demo)")])]
    assert group_schools(ENTRIES, "zzz") == []
    assert group_schools(ENTRIES, "zzz", keep="c") == [
        ("County District", [("c", "Northview High School (demo)")])]


def test_demo_directory_loads_grouped(db_session, demo_directory) -> None:
    entries = load_schools(db_session)
    assert {e.code for e in entries} >= {"slps-roosevelt", "cty-oakridge"}
    assert [e.district for e in entries] == sorted(e.district for e in entries)
    lines = hotline_lines(db_session)
    assert ("Saint Louis Public Schools", "Courage2ReportMO (866) 748-7047") in lines
    assert last_known_hotlines() == lines


def test_submission_ids_are_deterministic_per_session_and_nonce(vault) -> None:
    secret, other_secret = new_session_secret(), new_session_secret()
    nonce = new_nonce(vault, secret)
    a, b = submission_ids(vault, secret, nonce), submission_ids(vault, secret, nonce)
    other = submission_ids(vault, secret, new_nonce(vault, secret))
    elsewhere = submission_ids(vault, other_secret, nonce)  # the same nonce, another session
    assert a == b and a.receipt_code != other.receipt_code
    assert a.receipt_code != elsewhere.receipt_code and a.external_id != elsewhere.external_id
    assert a.external_id != other.external_id and len(a.external_id) == 64
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}", a.receipt_code)
    assert normalize_code(a.receipt_code) == a.receipt_code.replace("-", "")


def test_a_nonce_verifies_only_for_the_session_it_was_issued_to(vault) -> None:
    secret, other_secret = new_session_secret(), new_session_secret()
    assert valid_session_secret(secret) == secret and len(secret) == 43  # 256 bits
    assert valid_session_secret("short") is None and valid_session_secret(7) is None
    nonce = new_nonce(vault, secret)
    assert verified_nonce(vault, secret, nonce) == nonce
    assert verified_nonce(vault, other_secret, nonce) is None
    forged = nonce[:16] + ("0" * 16 if nonce[16:] != "0" * 16 else "1" * 16)
    assert verified_nonce(vault, secret, forged) is None
    for junk in ("ab" * 16, "x" * 32, None, 5, ["a"], nonce.upper()):
        assert verified_nonce(vault, secret, junk) is None


class _Result:
    def __init__(self, category: object, floor: object) -> None:
        self.category = category
        self.severity_floor = floor
        self.signals = ["weapon-word"]


def test_triage_tolerates_odd_classifier_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(triage, "_classify", lambda text, lang: _Result("weapon", 4))
    assert triage.run_triage("gun", "en") == triage.Triage(Severity.LIFE_SAFETY, Category.WEAPON,
                                                           ("weapon-word",), classified=True)
    monkeypatch.setattr(triage, "_classify", lambda text, lang: _Result("not-a-category", 9))
    assert triage.run_triage("x", "en") == triage.Triage(None, None, ("weapon-word",),
                                                         classified=True)
    monkeypatch.setattr(triage, "_classify", None)
    assert triage.run_triage("x", "en") == triage.Triage()
    assert triage.triage_text(" body ", {"when": "", "where": " gym "}) == "body\ngym"


def test_capped_upload_keeps_one_byte_past_the_cap_and_counts_the_rest() -> None:
    buf = CappedUpload(cap=10)
    for _ in range(5):
        assert buf.write(b"abcd") == 4
    assert buf.total == 20 and buf.overflowed
    buf.seek(0)
    assert buf.read() == b"abcdabcdabc"
    small = CappedUpload(cap=10)
    small.write(b"0123456789")
    assert not small.overflowed


def test_read_images_refuses_overflow_before_decoding() -> None:
    buf = CappedUpload(cap=4)
    buf.write(b"\x89PNG-and-much-more")
    buf.seek(0)
    storage = FileStorage(stream=buf, filename="a.png", content_type="image/png")
    with pytest.raises(UploadRefused, match="smaller than"):
        read_images([storage], UploadLimits(max_bytes=4))
    empty = FileStorage(stream=io.BytesIO(b""), filename="",
                        content_type="application/octet-stream")
    assert read_images([empty], UploadLimits(max_bytes=4)) == []
