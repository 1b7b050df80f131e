"""The rate-limit salt: random, shared by every process through Redis, gone after its window.

The attack these tests try: someone holds a copy of the limiter's Redis and the key file and
wants to know which address made a bucket. Once the window's salt has expired that must be
impossible; while it lasts, every web process must still count one client in one bucket.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.conftest import REDIS_URL
from tests.web.limits import build_app, client_at, wrong_code
from tipline.crypto import Vault
from tipline.intake.views import CODE_LIMIT
from tipline.web.security import SALT_PREFIX, AnonymousKey, MemorySalts, RedisSalts

# A Redis database of its own, so that deleting the salt here touches nobody else's test.
LIMITER_REDIS = REDIS_URL.rsplit("/", 1)[0] + "/14"
__all__ = ["build_app"]  # the fixture
REPORTER = "198.51.100.7"
HOUR = 3600


@pytest.fixture
def limiter_redis() -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(LIMITER_REDIS)

    def clear() -> None:
        for key in r.scan_iter("*"):
            r.delete(key)

    clear()
    yield r
    clear()
    r.close()


def _buckets(r: redis.Redis) -> set[str]:
    """The client digests the limiter wrote: LIMITS:LIMITER/<digest>/<endpoint>/..."""
    return {key.decode().split("/")[1] for key in r.scan_iter("LIMITS:*")}


def _salt_keys(r: redis.Redis) -> list[bytes]:
    return [key for key in r.scan_iter("*") if not key.startswith(b"LIMITS:")]


def _from_key_file(vault: Vault, addr: str, at: float) -> str:
    """What an attacker with the key file computes for ``addr`` if the salt comes from it."""
    salt = hmac.new(vault.derive_secret("ratelimit"), str(int(at // HOUR)).encode(),
                    hashlib.sha256).digest()
    return hmac.new(salt, addr.encode(), hashlib.sha256).hexdigest()[:32]


def test_a_copy_of_redis_and_the_key_file_do_not_reveal_the_address(
        build_app, limiter_redis, vault) -> None:
    app = build_app(ratelimit_storage_url=LIMITER_REDIS)
    assert wrong_code(client_at(app, REPORTER)) == 400
    (bucket,) = _buckets(limiter_redis)
    salts = {key: limiter_redis.ttl(key) for key in _salt_keys(limiter_redis)}
    # The window is over: its salt has expired (deleted here, as its TTL would).
    if salts:
        limiter_redis.delete(*salts)
    copy = {key: limiter_redis.get(key) for key in limiter_redis.scan_iter("*")}
    assert all(REPORTER.encode() not in key + (value or b"") for key, value in copy.items())
    now = time.time()
    assert bucket not in {_from_key_file(vault, REPORTER, at) for at in (now - HOUR, now)}
    # While it lasted, the salt was one Redis key that lived no longer than the window.
    assert len(salts) == 1
    assert 0 < next(iter(salts.values())) <= HOUR - int(now) % HOUR + 1


def test_the_salt_is_random_not_derived_from_the_key_file(build_app, limiter_redis) -> None:
    app = build_app(ratelimit_storage_url=LIMITER_REDIS)
    assert wrong_code(client_at(app, REPORTER)) == 400
    first = _buckets(limiter_redis)
    for key in _salt_keys(limiter_redis):
        limiter_redis.delete(key)
    # A new process (same key file, same hour) after the salt is gone: a different digest.
    assert wrong_code(client_at(build_app(ratelimit_storage_url=LIMITER_REDIS), REPORTER)) == 400
    assert len(_buckets(limiter_redis) - first) == 1


def test_every_web_process_counts_one_client_in_one_bucket(build_app, limiter_redis) -> None:
    """Two apps stand for two gunicorn workers sharing the limiter's Redis."""
    workers = [build_app(ratelimit_storage_url=LIMITER_REDIS) for _ in range(2)]
    allowed = int(CODE_LIMIT.split()[0])
    for i in range(allowed):
        assert wrong_code(client_at(workers[i % 2], REPORTER)) == 400
    assert wrong_code(client_at(workers[0], REPORTER)) == 429
    assert wrong_code(client_at(workers[1], REPORTER)) == 429
    assert wrong_code(client_at(workers[1], "198.51.100.8")) == 400
    assert len(_salt_keys(limiter_redis)) == 1


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A port that accepts connections and never answers, like a hung Redis."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _timed(fn: Any, *args: Any) -> tuple[int, float]:
    started = time.monotonic()
    status = fn(*args)
    return int(getattr(status, "status_code", status)), time.monotonic() - started


@pytest.mark.parametrize("outage", ["refused", "hung"])
def test_follow_up_and_tips_work_while_the_limiter_redis_is_down(
        build_app, silent_redis, outage, db_session, demo_directory) -> None:
    """A tip is always accepted, and no request waits long on the limiter's Redis."""
    from tests.intake.helpers import post_tip

    url = silent_redis if outage == "hung" else f"redis://127.0.0.1:{_free_port()}/0"
    client = client_at(build_app(ratelimit_storage_url=url), REPORTER)
    answers = [_timed(wrong_code, client), _timed(post_tip, client)]
    # Still limited, per process, while Redis is away.
    answers += [_timed(wrong_code, client) for _ in range(int(CODE_LIMIT.split()[0]))]
    statuses = [status for status, _ in answers]
    assert statuses[1] == 200  # the receipt page
    assert statuses[-1] == 429 and set(statuses[:1] + statuses[2:-1]) == {400}
    assert max(seconds for _, seconds in answers) < 3, answers


def test_the_digest_changes_with_the_window_and_the_old_salt_is_dropped() -> None:
    clock = [10 * HOUR + 5.0]
    salts = MemorySalts()
    key = AnonymousKey(b"k" * 32, salts, clock=lambda: clock[0])
    first = key.digest(REPORTER)
    assert key.digest(REPORTER) == first != key.digest("198.51.100.8")
    clock[0] += HOUR
    assert key.digest(REPORTER) != first
    assert salts.salt(10, 1) != salts.salt(11, 1)  # window 10's salt is gone for good


def test_redis_salt_expires_with_its_window(limiter_redis) -> None:
    now = 10 * HOUR + HOUR - 30.0  # 30 s before the hour ends
    key = AnonymousKey(b"k" * 32, RedisSalts(LIMITER_REDIS), clock=lambda: now)
    key.digest(REPORTER)
    (salt_key,) = _salt_keys(limiter_redis)
    assert salt_key == f"{SALT_PREFIX}10".encode()
    assert 0 < limiter_redis.ttl(salt_key) <= 30


def test_redis_salt_falls_back_to_memory_and_comes_back(limiter_redis) -> None:
    down = RedisSalts(f"redis://127.0.0.1:{_free_port()}/0", retry_seconds=0)
    assert len(down.salt(7, 60)) == 32  # no error: a salt of this process's own
    up = RedisSalts(LIMITER_REDIS)
    down._redis = up._redis  # Redis is back
    assert down.salt(7, 60) == up.salt(7, 60) == limiter_redis.get(f"{SALT_PREFIX}7")
