"""The deploy path, checked without a Docker engine: the compose file, the Dockerfile, the
build context and the README agree, and no secret gets into the image."""

from __future__ import annotations

import os
import re
import runpy
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
README = (ROOT / "README.md").read_text()
TIPLINE_SERVICES = [n for n, s in SERVICES.items() if s.get("image") == "tipline:latest"]
SECRET_WORDS = re.compile(r"(SECRET|PASSWORD|TOKEN|AUTH|PRIVATE|_KEY\b|KEYS?_FILE)", re.I)


def test_every_service_has_a_healthcheck_or_says_why_not() -> None:
    for name, service in SERVICES.items():
        reason = service.get("x-healthcheck-none", "")
        assert "healthcheck" in service or len(reason) > 20, name
        if "healthcheck" in service:
            assert service["healthcheck"]["test"], name


def test_tipline_services_run_read_only_from_the_image_as_non_root() -> None:
    assert set(TIPLINE_SERVICES) >= {"migrate", "web", "worker", "scheduler"}
    for name in TIPLINE_SERVICES:
        service = SERVICES[name]
        assert service.get("read_only") is True, name
        assert "/tmp" in service.get("tmpfs", []), name  # noqa: S108
        mounts = service["volumes"]
        assert "./secrets:/run/secrets/tipline:ro" in mounts, name
        key_file = service["environment"]["TIPLINE_KEY_FILE"]
        assert key_file.startswith("/run/secrets/tipline/"), name
    user = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root")


def test_nothing_reaches_the_app_except_through_loopback_or_the_tls_proxy() -> None:
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            if name == "caddy":
                assert service.get("profiles") == ["tls"]
                continue
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert "9108" not in str([s.get("ports") for s in SERVICES.values()])  # metrics: internal


def test_no_secret_is_baked_into_the_image() -> None:
    for line in DOCKERFILE.splitlines():
        if re.match(r"^\s*(ENV|ARG)\b", line):
            assert not SECRET_WORDS.search(line), line
        if line.startswith(("COPY", "ADD")):
            assert "tipline.env" not in line and "secrets" not in line and "keys" not in line
            assert not re.search(r"^COPY\s+\.\s", line), "the whole context is never copied"
    ignored = (ROOT / ".dockerignore").read_text().split()
    for needed in ("var", "secrets", "keys.json", "**/keys.json", "config/tipline.env", ".env",
                   ".git"):
        assert needed in ignored, needed


def test_the_image_is_multi_stage_locked_and_non_editable() -> None:
    assert len(re.findall(r"^FROM ", DOCKERFILE, re.M)) >= 2
    assert "--require-hashes -r requirements/runtime.txt" in DOCKERFILE
    assert "pip install --no-deps /src/dist/tipline-*.whl" in DOCKERFILE
    assert not re.search(r"pip install[^\n]*\s-e\s", DOCKERFILE)
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.M):
        for path in src.split():
            assert (ROOT / path.rstrip("/")).exists(), path
    assert "10001" in DOCKERFILE


def test_the_lock_pins_every_dependency_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def pinned(lock: str) -> set[str]:
        text = (ROOT / "requirements" / lock).read_text()
        names = set()
        for block in re.split(r"\n(?=[A-Za-z0-9])", text):
            m = re.match(r"([A-Za-z0-9_.\-]+)==\S+", block)
            if m:
                assert "--hash=sha256:" in block, m.group(1)
                names.add(re.sub(r"[-_.]+", "-", m.group(1).lower()))
        return names

    def wanted(specs: list[str]) -> set[str]:
        return {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.\-]+", s).group(0).lower())  # type: ignore[union-attr]
                for s in specs}

    runtime, dev = pinned("runtime.txt"), pinned("dev.txt")
    assert wanted(project["dependencies"]) <= runtime, "run `make lock`"
    extras = project["optional-dependencies"]
    assert wanted(project["dependencies"] + extras["test"] + extras["dev"]) <= dev, \
        "run `make lock`"
    assert {"setuptools", "wheel"} <= pinned("build.txt")


def test_the_readme_steps_match_the_compose_file() -> None:
    for name in SERVICES:
        assert f"`{name}`" in README, name
    assert "127.0.0.1:8080" in README and "--profile tls" in README
    assert "install -d -o 10001 -g 10001 -m 0700 secrets" in README
    assert '-v "$PWD/secrets:/out" web tipline keys init --key-file /out/keys.json' in README
    assert "/run/secrets/tipline" in README
    assert "TIPLINE_TRUSTED_PROXY_HOPS" in README
    assert "docs/operations.md" in README


def _gunicorn_workers(monkeypatch: Any, cores: int, override: str = "") -> int:
    """The worker count config/gunicorn.conf.py gives a machine with ``cores`` usable cores."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    monkeypatch.setenv("TIPLINE_WEB_WORKERS", override)
    conf = runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
    return int(conf["workers"])


def test_gunicorn_runs_one_sync_worker_per_core_plus_one(monkeypatch: Any) -> None:
    # docs/performance.md, "What changed" item 19: more workers cost each tip more CPU.
    assert [_gunicorn_workers(monkeypatch, n) for n in (1, 2, 4, 8, 64)] == [2, 3, 5, 9, 9]
    assert _gunicorn_workers(monkeypatch, 2, override="7") == 7
