"""config/example.env documents every variable load_settings reads, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from tipline.settings import ENV_VARIABLES, read_env_file

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "example.env"


def test_every_setting_is_documented() -> None:
    documented = set(read_env_file(EXAMPLE))
    assert set(ENV_VARIABLES) <= documented, set(ENV_VARIABLES) - documented
    assert documented <= set(ENV_VARIABLES), documented - set(ENV_VARIABLES)


def test_each_variable_has_a_comment_above_it() -> None:
    lines = EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Z_]+=", line):
            above = [ln for ln in lines[max(0, i - 3) : i] if ln.startswith("#")]
            group_var = i > 0 and re.match(r"^[A-Z_]+=", lines[i - 1])
            assert above or group_var, f"{line.split('=')[0]} has no explanation"
