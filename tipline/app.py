"""The application factory: ``create_app(settings)`` is the only way to build the app."""

from __future__ import annotations

import functools
import logging
from typing import Any

from babel import Locale
from flask import Flask, render_template, request, session
from flask_babel import Babel
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header
from werkzeug.middleware.proxy_fix import ProxyFix

import tipline.models  # noqa: F401  (every mapper configured before first use)
from tipline import crypto
from tipline.celeryconf import build_celery
from tipline.context import Services
from tipline.db import Database
from tipline.jobs import CeleryQueue
from tipline.keysetup import load_or_create_keyring
from tipline.logconfig import configure_logging, install_request_ids
from tipline.ops.release import __version__
from tipline.routing.publishing import unpublished_marker
from tipline.settings import Settings
from tipline.web import close_session
from tipline.web.inputs import TiplineFlask, refuse_nul_on_staff_pages
from tipline.web.security import (
    LIMITER_REDIS_OPTIONS,
    AnonymousKey,
    FilteredLimiter,
    SessionCookies,
    install_security_headers,
    salts_for,
)

log = logging.getLogger(__name__)

csrf = CSRFProtect()


def build_services(settings: Settings, **overrides: Any) -> Services:
    """Database, vault, queue: everything a process needs, from the settings alone."""
    ring = load_or_create_keyring(settings)
    vault = crypto.Vault(ring)
    crypto.install(vault)
    db = overrides.pop("db", None) or Database(settings.database_url)
    celery = overrides.pop("celery", None) or build_celery(settings)
    queue = overrides.pop("queue", None) or CeleryQueue(
        celery, settings.publish_timeout_seconds, on_unpublished=unpublished_marker(db))
    return Services(settings=settings, db=db, vault=vault, queue=queue, celery=celery, **overrides)


def create_app(settings: Settings, **overrides: Any) -> Flask:
    configure_logging(settings.log_level, settings.log_format)
    import tipline

    root = __import__("pathlib").Path(tipline.__file__).resolve().parent.parent
    app = TiplineFlask(  # ids out of the database's range and NUL in a path: 404
        "tipline",
        template_folder=str(root / "tipline" / "templates"),  # in the wheel too
        static_folder=str(root / "tipline" / "static"),
    )
    refuse_nul_on_staff_pages(app)  # the first before-request function (tipline.web.inputs)
    svc = build_services(settings, **overrides)
    app.extensions["tipline"] = svc
    app.config.update(
        SECRET_KEY=settings.secret_key or svc.vault.ring.secret_key,
        SESSION_COOKIE_NAME="tl",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.https,
        PERMANENT_SESSION_LIFETIME=3600 * 4,
        WTF_CSRF_TIME_LIMIT=3600 * 4,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes * 4 + 1024 * 1024,
        BABEL_DEFAULT_LOCALE=settings.default_language,
        BABEL_TRANSLATION_DIRECTORIES=str(root / "tipline" / "translations"),
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_url,
        RATELIMIT_HEADERS_ENABLED=False,
        RATELIMIT_STRATEGY="fixed-window",
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.session_interface = SessionCookies()
    app.teardown_appcontext(close_session)
    csrf.init_app(app)
    Babel(app, locale_selector=LocaleSelector(settings))
    store = settings.ratelimit_storage_url
    limiter = FilteredLimiter(
        key_func=AnonymousKey(svc.vault.derive_secret("ratelimit"), salts_for(store)),
        app=app,
        storage_uri=store,
        storage_options=LIMITER_REDIS_OPTIONS if store.startswith("redis") else {},
        default_limits=[],
        in_memory_fallback_enabled=True,
        swallow_errors=True,
    )
    app.extensions["tipline_limiter"] = limiter
    if settings.trusted_proxy_hops:
        # The client address (for the rate limits) as the trusted proxies saw it. Only the
        # address: a forwarded https scheme would switch on Flask-WTF's HTTPS Referer check,
        # and browsers send no Referer here (no-referrer), so every form would fail.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxy_hops, x_proto=0, x_host=0)
    install_security_headers(app, settings.https)
    install_request_ids(app)
    from tipline.surge import services as surge

    surge.configure(settings.surge_grouping)

    from tipline.health.views import bp as health_bp
    from tipline.intake.views import bp as intake_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(intake_bp)
    _register_optional_blueprints(app)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"current_lang": select_locale(settings), "languages": settings.languages,
                "tipline_version": __version__}

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> Any:
        from tipline.intake.views import handle_csrf_error

        return handle_csrf_error(exc)

    @app.errorhandler(404)
    def _not_found(_exc: Exception) -> Any:
        return render_template("errors/404.html"), 404

    @app.errorhandler(413)
    def _too_large(_exc: Exception) -> Any:
        return render_template("errors/413.html"), 413

    @app.errorhandler(429)
    def _too_many(_exc: Exception) -> Any:
        return render_template("errors/429.html"), 429

    @app.errorhandler(500)
    def _server_error(_exc: Exception) -> Any:
        # The failure may have left the request's transaction aborted; the page (its staff
        # navigation loads the account) must not fail on it too.
        close_session()
        return render_template("errors/500.html"), 500

    return app


def _register_optional_blueprints(app: Flask) -> None:
    """Packages that add web surfaces register here (telephony webhooks, dashboard)."""
    import importlib

    for module, attr in (
        ("tipline.telephony.views", "bp"),
        ("tipline.routing.views", "bp"),
        ("tipline.triage.views", "bp"),
        ("tipline.admin.views", "bp"),
        ("tipline.surge.views", "bp"),
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if not exc.name or not module.startswith(exc.name):
                raise
            continue
        register = getattr(mod, "register", None)
        if register is not None:
            register(app)
        else:
            app.register_blueprint(getattr(mod, attr))


def select_locale(settings: Settings) -> str:
    chosen = request.args.get("lang") or request.form.get("lang")
    if chosen in settings.languages:
        session["lang"] = chosen
        return chosen
    stored = session.get("lang")
    if stored in settings.languages:
        return str(stored)
    return best_language(request.headers.get("Accept-Language"),
                         settings.languages) or settings.default_language


@functools.lru_cache(maxsize=256)
def best_language(header: str | None, languages: tuple[str, ...]) -> str | None:
    """``request.accept_languages.best_match(languages)`` for an Accept-Language header.

    The answer depends on the header's text alone, and browsers send the same few headers,
    so it is kept per header (256 at most) instead of parsed and matched on every request.
    With ``LocaleSelector`` a tip submit's thread CPU fell by 40 us without the header and by
    84 us with a browser's (interleaved, 3,000 submits each).
    """
    return parse_accept_header(header, LanguageAccept).best_match(languages)


class LocaleSelector:
    """Flask-Babel's locale selector: ``select_locale``'s choice as a ``Locale`` parsed once
    per language code (Flask-Babel returns a ``Locale`` as it is, and parses a code anew
    for every request)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._parsed: dict[str, Locale] = {}

    def __call__(self) -> Locale:
        code = select_locale(self._settings)  # one of the settings' languages
        parsed = self._parsed.get(code)
        if parsed is None:
            parsed = self._parsed[code] = Locale.parse(code)
        return parsed
