"""Health and readiness for load balancers and docker-compose."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from tipline.web import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Liveness plus a database round trip; never reveals anything about tips."""
    try:
        with services().db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return jsonify(status="degraded", database="unreachable"), 503
    return jsonify(status="ok", database="ok"), 200
