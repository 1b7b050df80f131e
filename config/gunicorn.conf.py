"""Gunicorn settings for tipline (docker-compose `web`). The access log never names a client."""

import os

wsgi_app = "tipline.wsgi:app"
bind = os.environ.get("TIPLINE_BIND", "0.0.0.0:8080")
workers = int(os.environ.get("TIPLINE_WEB_WORKERS", "2"))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
accesslog = "-"
# No %(h)s (address), %(a)s (user agent), %(f)s (referer) or %(q)s (query string).
access_log_format = '%(t)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
errorlog = "-"
proxy_protocol = False
