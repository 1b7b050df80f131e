"""``PushFormDataParser``: multipart bodies read by ``multipart`` instead of Werkzeug's parser.

What a browser sends must come out exactly as Werkzeug's parser gave it (the fields, the
files with their names, types and bytes, the empty file input); a hostile body must give an
empty form or a 413, never an exception the app turns into a 500; and the limits Werkzeug
applies (parts, text size) must still apply.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request

from tests.browserclient import encode_like_a_browser
from tipline.web.formparser import PushFormDataParser
from tipline.web.inputs import TiplineRequest


def _environ(body: bytes, ctype: str) -> dict[str, Any]:
    return {"REQUEST_METHOD": "POST", "CONTENT_TYPE": ctype, "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body), "SERVER_NAME": "t", "SERVER_PORT": "80",
            "wsgi.url_scheme": "http", "PATH_INFO": "/"}


def _parsed(cls: type[Request], body: bytes, ctype: str, **limits: Any) -> tuple[Any, Any]:
    req = cls(_environ(body, ctype))
    for name, value in limits.items():
        setattr(req, name, value)
    form = list(req.form.items(multi=True))
    files = [(name, f.filename, f.content_type, f.stream.read())
             for name, f in req.files.items(multi=True)]
    return form, files


BROWSER_FORMS: list[dict[str, Any]] = [
    {"school": "slps-roosevelt", "category": "threat", "body": "A fight on Friday.",
     "attachments": (io.BytesIO(b""), "")},  # the tip form with no picture chosen
    {"body": "", "who": "", "website": "", "send": "1"},  # empty values
    {"body": "Él dijo «mañana» 🙂\r\nsecond line\n", "ui_lang": "es"},  # UTF-8, line breaks
    {"tag": ["a", "b", "c"], "body": "--not a boundary\r\n--"},  # repeated names, dashes
    {"attachments": [(io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"\x00" * 300), "a.png", "image/png"),
                     (io.BytesIO(b"\xff\xd8\xff" + b"\r\n--" * 50), "b.jpg", "image/jpeg")],
     "body": "two pictures"},
    {"big": "x" * 200_000},  # longer than one 64 KiB read
]


@pytest.mark.parametrize("data", BROWSER_FORMS)
def test_a_browser_body_reads_as_werkzeugs_parser_reads_it(data: dict[str, Any]) -> None:
    def fresh() -> dict[str, Any]:  # the file streams are read once per encoding
        out: dict[str, Any] = {}
        for key, value in data.items():
            items = value if isinstance(value, list) else [value]
            copied = [(io.BytesIO(v[0].getvalue()), *v[1:]) if isinstance(v, tuple) else v
                      for v in items]
            out[key] = copied if isinstance(value, list) else copied[0]
        return out

    body, ctype = encode_like_a_browser(fresh())
    ours = _parsed(TiplineRequest, body, ctype)
    assert ours == _parsed(Request, body, ctype)
    assert ours[0] or ours[1]  # something was read: the comparison is not of two empty forms


def test_the_empty_file_input_is_a_file_with_no_name_as_in_werkzeug() -> None:
    body, ctype = encode_like_a_browser({"a": "1", "attachments": (io.BytesIO(b""), "")})
    form, files = _parsed(TiplineRequest, body, ctype)
    assert form == [("a", "1")]
    assert files == [("attachments", "", "application/octet-stream", b"")]


def test_a_part_in_latin_1_is_decoded_as_latin_1_and_an_unknown_charset_as_utf_8() -> None:
    b = "----B"
    body = (f'--{b}\r\nContent-Disposition: form-data; name="l"\r\n'
            "Content-Type: text/plain; charset=ISO-8859-1\r\n\r\n").encode() + "café".encode(
        "latin-1") + (f'\r\n--{b}\r\nContent-Disposition: form-data; name="u"\r\n'
                      "Content-Type: text/plain; charset=x-evil\r\n\r\n").encode() + \
        "café".encode() + b"\r\n--" + b.encode() + b"--\r\n"
    ctype = f"multipart/form-data; boundary={b}"
    assert _parsed(TiplineRequest, body, ctype)[0] == [("l", "café"), ("u", "café")]
    assert _parsed(TiplineRequest, body, ctype) == _parsed(Request, body, ctype)


def test_bad_utf_8_in_a_value_is_replaced_not_refused() -> None:
    b = "zz"
    body = (f'--{b}\r\nContent-Disposition: form-data; name="v"\r\n\r\n').encode() + \
        b"ok \xff\xfe end" + f"\r\n--{b}--\r\n".encode()
    assert _parsed(TiplineRequest, body, f"multipart/form-data; boundary={b}")[0] == \
        [("v", "ok \ufffd\ufffd end")]


HOSTILE: list[tuple[str, bytes]] = [
    ("multipart/form-data", b"--x\r\n\r\n"),  # no boundary parameter
    ("multipart/form-data; boundary=", b"--\r\n"),  # empty boundary
    ("multipart/form-data; boundary=\"\"", b"----\r\n"),
    ("multipart/form-data; boundary=zz", b""),  # no body at all
    ("multipart/form-data; boundary=zz", b"--zz\r\nbroken"),  # truncated in the headers
    ("multipart/form-data; boundary=zz",
     b'--zz\r\nContent-Disposition: form-data; name="a"\r\n\r\nno end'),  # no closing boundary
    ("multipart/form-data; boundary=zz",
     b'--zz\r\nContent-Disposition: form-data; name="a"\r\n\r\n--zz--\r\n'),  # Werkzeug's shape
    ("multipart/form-data; boundary=zz", b"--zz\r\nno colon here\r\n\r\nv\r\n--zz--\r\n"),
    ("multipart/form-data; boundary=zz", b"--zz\r\nContent-Type: text/plain\r\n\r\nv\r\n--zz--"),
    ("multipart/form-data; boundary=zz",
     b'--zz\r\nContent-Disposition: attachment; name="a"\r\n\r\nv\r\n--zz--\r\n'),
    ("multipart/form-data; boundary=zz",
     b'--zz\nContent-Disposition: form-data; name="a"\n\nv\n--zz--\n'),  # bare LF
    ("multipart/form-data; boundary=zz", b"--zz\r\n" + b"X-H: v\r\n" * 20 + b"\r\nv\r\n--zz--"),
    ("multipart/form-data; boundary=zz", b"--zz\r\nX-Long: " + b"a" * 10_000 + b"\r\n\r\n"),
    ("multipart/form-data; boundary=zz",
     b'--zz\r\nContent-Disposition: form-data; name="\xff\xfe"\r\n\r\nv\r\n--zz--\r\n'),
    ("multipart/form-data; boundary=zz",
     b'--zz\r\nContent-Disposition: form-data; name="a"\r\nContent-Length: 99\r\n\r\n'
     b"v\r\n--zz--\r\n"),  # a part shorter than it says
    ("multipart/form-data; boundary=zz",
     b'--zz\r\nContent-Disposition: form-data; name="a"\r\nContent-Length: -1\r\n\r\nv\r\n--zz--'),
    ("multipart/form-data; boundary=zz", b"junk before\r\nmore junk" * 1000),
    ("multipart/form-data; boundary=\u00e9\u00e9", "--\u00e9\u00e9\r\n".encode()),
    ("multipart/form-data; boundary=a\tb", b"--a\tb--\r\n"),
]


@pytest.mark.parametrize(("ctype", "body"), HOSTILE)
def test_a_malformed_body_reads_as_an_empty_form_and_never_raises(ctype: str,
                                                                  body: bytes) -> None:
    form, files = _parsed(TiplineRequest, body, ctype)
    assert (form, files) == ([], [])


def test_a_name_left_out_reads_as_an_empty_name_and_collides_with_nothing() -> None:
    body = b'--zz\r\nContent-Disposition: form-data\r\n\r\nv\r\n--zz--\r\n'
    assert _parsed(TiplineRequest, body, "multipart/form-data; boundary=zz")[0] == [("", "v")]


def test_data_after_the_closing_boundary_is_ignored() -> None:
    body = (b'--zz\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n--zz--\r\n'
            b'--zz\r\nContent-Disposition: form-data; name="b"\r\n\r\nw\r\n--zz--\r\n')
    assert _parsed(TiplineRequest, body, "multipart/form-data; boundary=zz")[0] == [("a", "v")]


def _parts(n: int) -> tuple[bytes, str]:
    return encode_like_a_browser({"f": [str(i) for i in range(n)]})


def test_more_parts_than_max_form_parts_is_a_413_as_in_werkzeug() -> None:
    body, ctype = _parts(4)
    assert len(_parsed(TiplineRequest, body, ctype, max_form_parts=4)[0]) == 4
    for cls in (Request, TiplineRequest):
        with pytest.raises(RequestEntityTooLarge):
            _parsed(cls, *_parts(5), max_form_parts=4)


def test_a_text_part_over_max_form_memory_size_is_a_413_and_a_file_part_is_not() -> None:
    body, ctype = encode_like_a_browser({"t": "x" * 1001})
    for cls in (Request, TiplineRequest):
        with pytest.raises(RequestEntityTooLarge):
            _parsed(cls, body, ctype, max_form_memory_size=1000)
    body, ctype = encode_like_a_browser({"t": "x" * 1000})
    assert _parsed(TiplineRequest, body, ctype, max_form_memory_size=1000)[0] == [("t", "x" * 1000)]
    body, ctype = encode_like_a_browser({"f": (io.BytesIO(b"y" * 5000), "f.bin")})
    assert _parsed(TiplineRequest, body, ctype, max_form_memory_size=1000)[1][0][3] == b"y" * 5000


def test_file_parts_go_to_the_requests_stream_factory() -> None:
    made: list[tuple[Any, ...]] = []

    def factory(**kw: Any) -> io.BytesIO:
        made.append((kw["filename"], kw["content_type"], kw["total_content_length"]))
        return io.BytesIO()

    body, ctype = encode_like_a_browser({"a": "1", "p": (io.BytesIO(b"img"), "p.png")})
    _stream, form, files = PushFormDataParser(factory).parse(
        io.BytesIO(body), "multipart/form-data", len(body),
        {"boundary": ctype.split("boundary=")[1]})
    assert made == [("p.png", "image/png", len(body))]
    assert list(form.items()) == [("a", "1")] and files["p"].read() == b"img"


def test_werkzeugs_parser_is_not_the_one_that_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from werkzeug import formparser

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("Werkzeug's multipart parser ran")

    monkeypatch.setattr(formparser.MultiPartParser, "parse", refuse)
    body, ctype = encode_like_a_browser({"a": "1"})
    assert _parsed(TiplineRequest, body, ctype)[0] == [("a", "1")]


def test_a_folded_part_header_is_refused_at_once_not_rebuilt_line_by_line() -> None:
    """Headers folded into hundreds of short lines cost the library 0.6-1.0 s of CPU per MB
    (2.62 s for this 4 MB body before ``UnfoldedPartParser``); no client folds them."""
    import time

    folded = b"X-A: " + "🙂".encode() + (b"\r\n " + "🙂".encode()) * 820 + b"\r\n"
    part = b'--zz\r\nContent-Disposition: form-data; name="a"\r\n' + folded * 7 + b"\r\nv\r\n"
    body = part * 100 + b"--zz--\r\n"
    started = time.process_time()
    assert _parsed(TiplineRequest, body, "multipart/form-data; boundary=zz") == ([], [])
    assert time.process_time() - started < 0.5
    one = b'--zz\r\nContent-Disposition: form-data;\r\n name="a"\r\n\r\nv\r\n--zz--\r\n'
    assert _parsed(TiplineRequest, one, "multipart/form-data; boundary=zz") == ([], [])


@pytest.mark.parametrize("disposition", [
    b"form-data; name=\"attachments\"; filename*=UTF-8''a%20b.png",  # RFC 2231, old libraries
    b'form-data; name="attachments";\tfilename="a b.png"',  # a tab before the parameter
])
def test_a_file_named_in_a_rarer_way_is_still_a_file(disposition: bytes) -> None:
    body = (b"--zz\r\nContent-Disposition: " + disposition + b"\r\nContent-Type: image/png\r\n"
            b"\r\n\x89PNG data\r\n--zz--\r\n")
    ours = _parsed(TiplineRequest, body, "multipart/form-data; boundary=zz")
    assert ours == ([], [("attachments", "a b.png", "image/png", b"\x89PNG data")])
    assert ours == _parsed(Request, body, "multipart/form-data; boundary=zz")
