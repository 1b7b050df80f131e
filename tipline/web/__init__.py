"""Glue between Flask and the services: the request's database session and the services."""

from __future__ import annotations

from flask import current_app, g
from sqlalchemy.orm import Session

from tipline.context import Services


def services() -> Services:
    svc: Services = current_app.extensions["tipline"]
    return svc


def db_session() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    if "db_session" not in g:
        g.db_session = services().db.sessions()
    session: Session = g.db_session
    return session


def close_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
