"""The district policy's surge options: grouping on or off, and the notice interval."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tipline.routing.policy import PolicyError, parse_policy

BASE = """
policy: t
districts:
  d1:
    school_hours: [{days: mon-fri, start: "07:00", end: "17:00"}]
    fallback: [c1]
    {extra}
    rules:
      - name: r
        default: true
        steps: [{alert: [{contact: c1}], channels: [sms], ack_within: 5m}]
"""


def _district(extra: str):
    return parse_policy(BASE.replace("{extra}", extra), "p.yaml").districts["d1"]


def test_defaults_are_on_and_fifteen_minutes():
    d = _district("")
    assert d.surge_grouping is True and d.surge_notice_every == timedelta(minutes=15)


def test_a_district_may_turn_grouping_off_and_set_the_interval():
    d = _district("surge_grouping: false\n    surge_notice_every: 30m")
    assert d.surge_grouping is False and d.surge_notice_every == timedelta(minutes=30)


@pytest.mark.parametrize("extra,word", [("surge_grouping: sometimes", "surge_grouping"),
                                        ("surge_notice_every: 10s", "surge_notice_every"),
                                        ("surge_notice_every: soon", "surge_notice_every")])
def test_nonsense_is_refused_naming_the_option(extra, word):
    with pytest.raises(PolicyError) as exc:
        _district(extra)
    assert word in str(exc.value)


def test_the_installation_setting_reads_from_the_environment():
    from tipline.settings import load_settings

    base = {"TIPLINE_MODE": "embedded"}
    assert load_settings(base).surge_grouping is True
    assert load_settings(base | {"TIPLINE_SURGE_GROUPING": "false"}).surge_grouping is False
