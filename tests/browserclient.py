"""A Flask test client that sends multipart bodies byte for byte as a browser does.

Werkzeug's test encoder (``werkzeug.sansio.multipart.MultipartEncoder``, "used by the test
client ... never in applications") leaves out the blank line after the part headers when a
value is empty: ``name="body"\\r\\n\\r\\n--boundary``, one CRLF short of RFC 7578 and of what
the HTML standard tells browsers to send. Werkzeug's parser guesses its way through that;
``multipart``, which the app uses (``tipline.web.formparser``), rejects it, as it rejects any
body whose part does not end in CRLF before the boundary. The tests therefore post what a
browser posts; the hostile-body tests send their own raw bytes, and
``tests/web/test_formparser.py`` checks that Werkzeug's shape gets an empty form, not a 500.
"""

from __future__ import annotations

import mimetypes
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from flask.testing import FlaskClient
from werkzeug.datastructures import FileStorage, MultiDict


def _is_file(value: Any) -> bool:
    return isinstance(value, FileStorage) or hasattr(value, "read") or (
        isinstance(value, tuple) and bool(value) and hasattr(value[0], "read"))


def _items(data: Mapping[str, Any] | MultiDict[str, Any]) -> Iterable[tuple[str, Any]]:
    if isinstance(data, MultiDict):
        yield from data.items(multi=True)
        return
    for key, value in data.items():
        if isinstance(value, list):
            for item in value:
                yield key, item
        else:
            yield key, value


def _quote(value: str) -> str:
    """The HTML standard's escaping of a name or filename in Content-Disposition."""
    return value.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")


def encode_like_a_browser(data: Mapping[str, Any]) -> tuple[bytes, str]:
    """``(body, content type)`` of ``data`` as multipart/form-data, as a browser sends it."""
    boundary = "----BrowserFormBoundary" + secrets.token_hex(8)
    out: list[bytes] = []
    for name, value in _items(data):
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"'
        if _is_file(value):
            if isinstance(value, FileStorage):
                stream, filename, ctype = value.stream, value.filename or "", value.content_type
            elif isinstance(value, tuple):
                stream = value[0]
                filename = value[1] if len(value) > 1 else getattr(stream, "name", "")
                ctype = value[2] if len(value) > 2 else None
            else:
                stream, filename, ctype = value, getattr(value, "name", ""), None
            if not ctype and filename:  # as Werkzeug's test client guesses it
                ctype = mimetypes.guess_type(str(filename))[0]
            content = stream.read()
            payload = content.encode() if isinstance(content, str) else bytes(content)
            head += (f'; filename="{_quote(str(filename or ""))}"\r\n'
                     f"Content-Type: {ctype or 'application/octet-stream'}")
        else:
            payload = value if isinstance(value, bytes) else str(value).encode()
        out.append(head.encode() + b"\r\n\r\n" + payload + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


class BrowserClient(FlaskClient):
    """``FlaskClient`` whose multipart bodies (a ``content_type`` of multipart/form-data, or a
    file among the values) are made by ``encode_like_a_browser``."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        data = kwargs.get("data")
        ctype = str(kwargs.get("content_type") or "")
        if isinstance(data, Mapping) and (
                ctype.startswith("multipart/form-data")
                or any(_is_file(v) or (isinstance(v, list) and any(map(_is_file, v)))
                       for v in data.values())):
            kwargs["data"], kwargs["content_type"] = encode_like_a_browser(data)
        return super().open(*args, **kwargs)
