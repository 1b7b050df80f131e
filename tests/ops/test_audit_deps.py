"""`make audit` never reports an audit that did not happen as a pass: pip-audit's JSON report
is read, and an unreachable vulnerability service is said loudly (exit 0, nothing checked)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("audit_deps", ROOT / "scripts" / "audit_deps.py")
assert spec and spec.loader
audit_deps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit_deps)


def fake_pip_audit(monkeypatch: pytest.MonkeyPatch, report: dict[str, Any] | None,
                   stderr: str = "") -> None:
    def run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        if report is not None:
            Path(cmd[cmd.index("--output") + 1]).write_text(json.dumps(report))
        return subprocess.CompletedProcess(cmd, 1 if report is None else 0, "", stderr)

    monkeypatch.setattr(audit_deps.subprocess, "run", run)


def dep(name: str, skip: str = "", vulns: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name, "version": "1.0", "vulns": vulns or []}
    if skip:
        d["skip_reason"] = skip
    return d


def test_every_package_skipped_is_not_run_not_a_pass(monkeypatch, capsys) -> None:
    why = "Dependency not found on PyPI and could not be audited"
    fake_pip_audit(monkeypatch, {"dependencies": [dep("flask", why), dep("celery", why)]})
    assert audit_deps.audit("requirements/runtime.txt") == 0
    out = capsys.readouterr().out
    assert "DEPENDENCY AUDIT NOT RUN" in out and "not a pass" in out
    assert "no known vulnerabilities" not in out


def test_a_network_failure_is_not_run(monkeypatch, capsys) -> None:
    fake_pip_audit(monkeypatch, None, "requests.exceptions.ConnectionError: NameResolutionError")
    assert audit_deps.audit("requirements/dev.txt") == 0
    assert "DEPENDENCY AUDIT NOT RUN" in capsys.readouterr().out


def test_another_crash_fails(monkeypatch) -> None:
    fake_pip_audit(monkeypatch, None, "ValueError: bad requirement line")
    assert audit_deps.audit("requirements/dev.txt") == 1


def test_a_vulnerability_or_a_partial_answer_fails(monkeypatch, capsys) -> None:
    fake_pip_audit(monkeypatch, {"dependencies": [
        dep("flask", vulns=[{"id": "PYSEC-0000-1", "fix_versions": ["9.9"]}]), dep("celery")]})
    assert audit_deps.audit("requirements/runtime.txt") == 1
    assert "PYSEC-0000-1" in capsys.readouterr().out
    fake_pip_audit(monkeypatch, {"dependencies": [dep("flask", "not found"), dep("celery")]})
    assert audit_deps.audit("requirements/runtime.txt") == 1


def test_a_clean_answer_passes(monkeypatch, capsys) -> None:
    fake_pip_audit(monkeypatch, {"dependencies": [dep("flask"), dep("celery")]})
    assert audit_deps.audit("requirements/runtime.txt") == 0
    assert "2 packages audited, no known vulnerabilities" in capsys.readouterr().out
