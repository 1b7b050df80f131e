"""Helpers for the reporter-side tests: CSRF tokens from real pages, images with metadata."""

from __future__ import annotations

import io
import re
from typing import Any

from PIL import Image

_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')
_NONCE = re.compile(
    r'name="submission"[^>]*value="([0-9a-f]{32})"|id="submission"[^>]*value="([0-9a-f]{32})"'
)


def csrf_from(html: str) -> str:
    m = _CSRF.search(html)
    assert m, "no CSRF token in the page"
    return m.group(1) or m.group(2)


def nonce_from(html: str) -> str | None:
    m = _NONCE.search(html)
    return (m.group(1) or m.group(2)) if m else None


def jpeg_with_gps(size: tuple[int, int] = (80, 60)) -> bytes:
    img = Image.new("RGB", size, (20, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "SpyPhone"
    exif[0x8825] = {1: "N", 2: (38.0, 37.0, 30.0), 3: "W", 4: (90.0, 12.0, 5.0)}
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def png_bytes(size: tuple[int, int] = (30, 20)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (250, 250, 250)).save(out, "PNG")
    return out.getvalue()


def tip_fields(token: str, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "csrf_token": token,
        "school": "slps-roosevelt",
        "category": "threat",
        "danger_now": "no",
        "body": "A student said he will start a fight at the bus stop after school",
        "when": "Friday after school",
        "where": "Bus stop on Arsenal St",
        "who": "a junior",
        "how_known": "I heard him say it",
        "send": "1",
    }
    data.update(overrides)
    return data


def open_form(client: Any, url: str = "/report") -> tuple[str, str]:
    """GET the tip form: (csrf token, page html)."""
    resp = client.get(url)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    return csrf_from(html), html


def post_tip(client: Any, **overrides: Any) -> Any:
    token, html = open_form(client)
    data = tip_fields(token, **overrides)
    data.setdefault("submission", nonce_from(html))
    return client.post("/report", data=data, content_type="multipart/form-data")
