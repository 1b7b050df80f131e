"""WSGI entry point for gunicorn: ``gunicorn tipline.wsgi:app``."""

from tipline.app import create_app
from tipline.cli import check_database, fail_cleanly
from tipline.settings import load_settings

with fail_cleanly():
    _settings = load_settings()
    check_database(_settings)
    app = create_app(_settings)
