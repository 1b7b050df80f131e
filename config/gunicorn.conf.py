"""Gunicorn settings for tipline (docker-compose `web`). The access log never names a client."""

import os

wsgi_app = "tipline.wsgi:app"
bind = os.environ.get("TIPLINE_BIND", "0.0.0.0:8080")


def _default_workers() -> int:
    """Two sync workers per usable core, plus one (gunicorn's own rule of thumb).

    A sync worker is busy for the whole of a request, including the waits on PostgreSQL (the
    commit) and Redis; with only one per core the cores idle during those waits while tips
    queue. Capped, so a container that sees a large host's cores does not start dozens.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return min(2 * cores + 1, 9)


workers = int(os.environ.get("TIPLINE_WEB_WORKERS") or _default_workers())
worker_class = "sync"
timeout = 30
graceful_timeout = 20
accesslog = "-"
# No %(h)s (address), %(a)s (user agent), %(f)s (referer) or %(q)s (query string).
access_log_format = '%(t)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
errorlog = "-"
proxy_protocol = False
