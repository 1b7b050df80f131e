"""Logging that never records who a reporter is.

Request logs of the development server start with the client address; the filter here
replaces it. Gunicorn's access format (config/gunicorn.conf.py) leaves address and user agent
out, and waitress (the embedded server) writes no access log.
"""

from __future__ import annotations

import logging
import re

_ADDR = re.compile(r"^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]{2,39}|\[[0-9a-fA-F:]+\]) - - ")


class NoClientAddress(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if _ADDR.match(msg):
            record.msg = _ADDR.sub("- - - ", msg)
            record.args = ()
        return True


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_tipline", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler._tipline = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(NoClientAddress())
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("werkzeug").addFilter(NoClientAddress())
    # waitress logs queue depth warnings only; keep them.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    # The embedded filesystem broker has no host; kombu warns about that at every start.
    logging.getLogger("kombu.connection").setLevel(logging.ERROR)
