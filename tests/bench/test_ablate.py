"""bench/ablate.py builds its app (tipline with parts of a tip's work switched off) only when
told exactly which parts: it must never come up as a working tip line by mistake."""

from __future__ import annotations

import pytest

from bench import ablate


@pytest.mark.parametrize("value", ["", ",", "surge,routing", "everything"])
def test_no_app_without_known_parts_named(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("BENCH_WITHOUT", value)
    with pytest.raises(SystemExit, match="BENCH_WITHOUT must name some of surge, publish"):
        ablate.create()


def test_no_app_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_WITHOUT", raising=False)
    with pytest.raises(SystemExit):
        ablate.create()
