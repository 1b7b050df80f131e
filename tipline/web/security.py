"""Response headers and the anonymous rate-limit key."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter
from itsdangerous import Signer, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import want_bytes
from redis.backoff import NoBackoff
from redis.retry import Retry

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; font-src 'self'; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


# Every response gets these, replacing whatever a view set.
FIXED_HEADERS = (
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()"),
)
HSTS = ("Strict-Transport-Security", "max-age=63072000; includeSubDomains")


def install_security_headers(app: Flask, https: bool) -> None:
    """CSP and Cache-Control unless the view set them, ``FIXED_HEADERS`` (and HSTS over https)
    always.

    The same headers in the same order as ``setdefault`` and ``h[name] = value`` one by one,
    but the response's header names are read once: each of those calls scanned (and
    lower-cased) the whole header list, 8 to 9 scans a response. A tip submit's thread CPU
    fell by ~20 us (interleaved, 3,000 submits each).
    """
    fixed = (*FIXED_HEADERS, HSTS) if https else FIXED_HEADERS
    fixed_lower = tuple((name.lower(), name, value) for name, value in fixed)

    @app.after_request
    def _headers(resp: Response) -> Response:
        h = resp.headers
        present = {name.lower() for name, _value in h}
        if "content-security-policy" not in present:
            h.add("Content-Security-Policy", CSP)
        for lower, name, value in fixed_lower:
            if lower in present:
                h[name] = value  # replaces the view's, where it stood
            else:
                h.add(name, value)
        if "cache-control" not in present and not (request.endpoint or "").endswith("static"):
            h.add("Cache-Control", "no-store")
        return resp


class _DerivedKeySigner(TimestampSigner):
    """itsdangerous' timestamp signer, each signing key derived once.

    ``derive_key`` computes the signing key from the secret key and the salt (for Flask's
    session, an HMAC) every time a cookie is signed or checked; the result depends only on
    those two, so it is kept per secret key. The signature is checked as before.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._derived: dict[bytes, bytes] = {}

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        key = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        derived = self._derived.get(key)
        if derived is None:
            derived = self._derived[key] = super().derive_key(key)
        return derived


class _KeptSignerSerializer(URLSafeTimedSerializer):
    """A serializer that builds its signer once per salt instead of once per call (the signer
    keeps only its keys and settings, and the derived keys above)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._signers: dict[bytes | None, Signer] = {}

    def make_signer(self, salt: str | bytes | None = None) -> Signer:
        key = self.salt if salt is None else want_bytes(salt)  # as dumps and loads pass it
        signer = self._signers.get(key)
        if signer is None:
            signer = self._signers[key] = super().make_signer(key)
        return signer


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed cookie session, its signing serializer built once per secret key.

    Flask builds a new itsdangerous serializer (its key list, and a ``dumps({})`` to tell a
    text serializer from a binary one) for every request that opens or saves a session. The
    serializer keeps no state between calls, so one per key list signs and reads the same
    cookies; a changed ``SECRET_KEY`` or ``SECRET_KEY_FALLBACKS`` gets a new one. It is
    Flask's serializer, with the same keys, salt and settings, except that its signer and
    the signer's derived key are made once (``_KeptSignerSerializer``).
    """

    def __init__(self) -> None:
        self._built: tuple[tuple[Any, ...], URLSafeTimedSerializer | None] = ((), None)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        built_for, serializer = self._built
        if built_for != keys:
            serializer = flasks = super().get_signing_serializer(app)
            if flasks is not None:
                serializer = _KeptSignerSerializer(
                    flasks.secret_keys, salt=flasks.salt, serializer=flasks.serializer,
                    signer=_DerivedKeySigner, signer_kwargs=flasks.signer_kwargs)
            self._built = (keys, serializer)
        return serializer


class FilteredLimiter(Limiter):
    """Flask-Limiter, which does no work for a request its request filters exempt.

    Flask-Limiter checks the filters (``limiter.request_filter``: the tip form) and finds no
    limit for such a request, but still evaluates that empty list: the endpoint's exemption
    scopes and the request's limiter context. With no meta limits (none are configured) that
    evaluation does nothing, so it is skipped; any other request (or a filter that fails)
    goes through Flask-Limiter as before. A tip submit's thread CPU fell by 46-74 us
    (interleaved, 3,000 submits each, two runs).
    """

    def _check_request_limit(self, callable_name: str | None = None,
                             in_middleware: bool = True) -> None:
        if self.enabled and self.initialized and not self._meta_limits:
            try:
                exempt = any(fn() for fn in self._request_filters)
            except Exception:  # Flask-Limiter decides what a failing filter means
                exempt = False
            if exempt:
                return
        super()._check_request_limit(callable_name, in_middleware)


# Bounds on every call to the limiter's Redis, so that a hung Redis delays no request by
# more than this: the limiter then falls back to memory, and tips never wait on it.
LIMITER_REDIS_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 0.5,
    "socket_timeout": 0.5,
    "retry": Retry(NoBackoff(), 0),
}
SALT_PREFIX = "tipline:ratelimit-salt:"
SALT_BYTES = 32


class MemorySalts:
    """A random salt per window, known to this process only (memory:// limits are per
    process too). The previous window's salt is dropped when the next one is drawn."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window = -1
        self._salt = b""

    def salt(self, window: int, seconds_left: int) -> bytes:
        with self._lock:
            if window != self._window:
                self._window, self._salt = window, secrets.token_bytes(SALT_BYTES)
            return self._salt


class RedisSalts:
    """One random salt per window for every web process, kept in the limiter's Redis with a
    TTL that ends with the window, so no process can recompute an old digest afterwards.

    The first process to need a window's salt creates it (``SET NX EX``); the others read
    it. While Redis is unreachable the limiter counts in process memory, and so does this:
    a salt of its own per process, retried against Redis every ``retry_seconds``.
    """

    def __init__(self, url: str, retry_seconds: float = 5.0) -> None:
        self._redis = redis.Redis.from_url(url, **LIMITER_REDIS_OPTIONS)
        self._retry_seconds = retry_seconds
        self._fallback = MemorySalts()
        self._cached: tuple[int, bytes] = (-1, b"")
        self._retry_at = 0.0

    def salt(self, window: int, seconds_left: int) -> bytes:
        cached_window, cached = self._cached
        if cached_window == window:
            return cached
        if time.monotonic() < self._retry_at:
            return self._fallback.salt(window, seconds_left)
        key = f"{SALT_PREFIX}{window}"
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(key, secrets.token_bytes(SALT_BYTES), nx=True, ex=seconds_left)
            pipe.get(key)
            _created, stored = pipe.execute()
        except redis.RedisError:
            self._retry_at = time.monotonic() + self._retry_seconds
            return self._fallback.salt(window, seconds_left)
        self._cached = (window, bytes(stored))
        return bytes(stored)


def salts_for(storage_url: str) -> MemorySalts | RedisSalts:
    """Where the salt lives: beside the limiter's counters."""
    if storage_url.startswith(("redis://", "rediss://")):
        return RedisSalts(storage_url)
    return MemorySalts()


class AnonymousKey:
    """Rate-limit key: HMAC of the client address under a key made of a secret from the key
    file and a random salt that changes every hour.

    The address itself is never stored; the limiter keeps only this digest, in memory or
    Redis, for the length of its window. The salt lives in memory or Redis only until its
    hour ends: after that, nobody (not even with the key file and a copy of Redis) can tell
    which address made a digest, and yesterday's digests cannot be linked to today's.
    """

    def __init__(self, secret: bytes, salts: MemorySalts | RedisSalts,
                 rotate_seconds: int = 3600, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._salts = salts
        self._rotate = rotate_seconds
        self._clock = clock

    def __call__(self) -> str:
        # The one place a network identity is touched: hashed at once, never logged.
        # ``remote_addr`` is the peer, or the client the trusted proxies saw (ProxyFix).
        return self.digest(request.remote_addr or "")

    def digest(self, addr: str) -> str:
        now = self._clock()
        window = int(now // self._rotate)
        seconds_left = max(1, math.ceil((window + 1) * self._rotate - now))
        salt = self._salts.salt(window, seconds_left)
        key = hmac.new(self._secret, salt, hashlib.sha256).digest()
        return hmac.new(key, addr.encode(), hashlib.sha256).hexdigest()[:32]
