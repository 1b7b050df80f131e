"""Response headers and the anonymous rate-limit key."""

from __future__ import annotations

import hashlib
import hmac
import time

from flask import Flask, Response, request

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; font-src 'self'; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def install_security_headers(app: Flask, https: bool) -> None:
    @app.after_request
    def _headers(resp: Response) -> Response:
        h = resp.headers
        h.setdefault("Content-Security-Policy", CSP)
        h["X-Frame-Options"] = "DENY"
        h["X-Content-Type-Options"] = "nosniff"
        h["Referrer-Policy"] = "no-referrer"
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        h["Cross-Origin-Resource-Policy"] = "same-origin"
        h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), interest-cohort=()"
        if https:
            h["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
        if not (request.endpoint or "").endswith("static"):
            h.setdefault("Cache-Control", "no-store")
        return resp


class AnonymousKey:
    """Rate-limit key: HMAC of the client address under a salt that changes every hour.

    The address itself is never stored; the limiter keeps only this digest, in memory or
    Redis, for the length of its window. Yesterday's digests cannot be linked to today's.
    """

    def __init__(self, secret: bytes, rotate_seconds: int = 3600) -> None:
        self._secret = secret
        self._rotate = rotate_seconds

    def __call__(self) -> str:
        epoch = int(time.time() // self._rotate)
        salt = hmac.new(self._secret, str(epoch).encode(), hashlib.sha256).digest()
        # The one place a network identity is touched: hashed at once, never logged.
        addr = (request.remote_addr or "").encode()
        return hmac.new(salt, addr, hashlib.sha256).hexdigest()[:32]
