"""`make audit`: pip-audit over the locked requirements, honest about what it could check.

pip-audit prints "No known vulnerabilities found" and exits 0 even when its vulnerability
service answered nothing (every package "not found on PyPI", as behind a proxy that blocks
PyPI's JSON API). So the JSON report is read: if the service could look up no package at all,
the audit did not run; that is printed loudly and the target exits 0 (an unreachable service
must not fail CI), never as a pass. A partial answer, or any known vulnerability, fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

LOCKS = ("requirements/runtime.txt", "requirements/dev.txt")
BANNER = "!" * 78
NETWORK_ERRORS = ("ConnectionError", "NameResolutionError", "Timeout", "Max retries exceeded")


def audit(lock: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        proc = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "pip_audit", "--requirement", lock, "--require-hashes",
             "--disable-pip", "--progress-spinner", "off", "--format", "json",
             "--output", str(out)],
            capture_output=True, text=True, check=False)
        if not out.exists():
            last = (proc.stderr.strip().splitlines() or ["no report"])[-1]
            if any(w in proc.stderr for w in NETWORK_ERRORS):
                return unreachable(lock, [last])
            print(f"{lock}: pip-audit failed: {last}")
            return 1
        report = json.loads(out.read_text())
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    vulnerable = [d for d in deps if d.get("vulns")]
    if deps and len(skipped) == len(deps):
        return unreachable(lock, [skipped[0]["skip_reason"]])
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
            print(f"{lock}: {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixes})")
    for dep in skipped:
        print(f"{lock}: {dep['name']} {dep.get('version', '')} NOT AUDITED: {dep['skip_reason']}")
    if vulnerable or skipped:
        print(f"{lock}: dependency audit FAILED ({len(vulnerable)} vulnerable, "
              f"{len(skipped)} not audited)")
        return 1
    print(f"{lock}: {len(deps)} packages audited, no known vulnerabilities")
    return 0


def unreachable(lock: str, why: list[str]) -> int:
    print(BANNER)
    print(f"DEPENDENCY AUDIT NOT RUN for {lock}: the vulnerability service could not be")
    print("reached from this machine, so NOTHING was checked. This is not a pass.")
    print(f"  ({'; '.join(why)[:300]})")
    print("Run `make audit` where PyPI's JSON API or OSV is reachable before a release.")
    print(BANNER)
    return 0


def main() -> int:
    return max(audit(lock) for lock in LOCKS)


if __name__ == "__main__":
    sys.exit(main())
