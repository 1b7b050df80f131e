"""Multipart form bodies parsed by the ``multipart`` library, behind Werkzeug's own interface.

A tip form sent without JavaScript (or with a picture) is ``multipart/form-data`` with a new
random boundary each time. Werkzeug's parser compiles two regular expressions for every new
boundary and walks the body event by event: about 0.54 ms of CPU for the 15-part tip form,
against 0.02 ms for the same fields URL-encoded, and most of what a multipart submit costs
more than a URL-encoded one. ``multipart``'s push parser (the parser of Bottle's author, made
for this job) reads the same body in about 0.04-0.08 ms (docs/performance.md, item 27).

Only the multipart step changes. ``FormDataParser`` still picks the parser by content type,
reads the body through Werkzeug's length-limited stream, turns a malformed body into an
empty form (``ValueError`` is its "silently empty" signal, and every ``multipart`` error is
one), and ``Request`` still calls ``stream_factory`` for each file part, so the reporter's
pages keep their capped in-memory uploads (``tipline.intake.uploads``). What Werkzeug's
parser guarantees is kept: a part with a ``filename`` parameter is a file even when the name
is empty (a browser's empty file input); text parts are decoded as UTF-8 (or the part's own
charset among ASCII, UTF-8 and Latin-1) with bad bytes replaced; more than
``max_form_parts`` parts, or a text part over ``max_form_memory_size``, is a 413.
"""

from __future__ import annotations

from typing import IO, Any

from multipart import MultipartSegment, ParserError, PushMultipartParser
from werkzeug.datastructures import FileStorage, Headers, MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser
from werkzeug.http import parse_options_header

# Werkzeug reads the body in chunks of this size; so do we.
CHUNK = 64 * 1024
# The charsets Werkzeug accepts in a part's Content-Type; any other reads as UTF-8.
PART_CHARSETS = frozenset({"ascii", "us-ascii", "utf-8", "iso-8859-1"})
# One Content-Disposition, one Content-Type, perhaps a Content-Length: browsers send at most 3.
MAX_PART_HEADERS = 8


class UnfoldedPartParser(PushMultipartParser):
    """``PushMultipartParser`` that refuses a part header folded over several lines.

    The library joins each continuation line onto the header before it and decodes the
    whole header again, so a body of headers folded into thousands of one-character lines
    cost 0.6-1.0 s of CPU per MB (the worst bodies found for Werkzeug's parser, 0.14-0.23 s),
    which a few posts of the 41 MB the app accepts (100 MB on the reporter's pages) would
    turn into minutes of the workers. No browser, curl or HTTP library folds a part header
    (RFC 7230 deprecates folding); such a body now reads as malformed: an empty form.
    """

    def _on_segment_headerline(self, line: bytes) -> None:
        if line[:1] in (b" ", b"\t"):
            raise ParserError("Folded segment header")
        super()._on_segment_headerline(line)


class PushFormDataParser(FormDataParser):
    """Werkzeug's ``FormDataParser`` with ``multipart``'s push parser for multipart bodies."""

    def _parse_multipart(
        self,
        stream: IO[bytes],
        mimetype: str,
        content_length: int | None,
        options: dict[str, str],
    ) -> tuple[IO[bytes], MultiDict[str, Any], MultiDict[str, Any]]:
        boundary = options.get("boundary", "")
        if not boundary:
            raise ValueError("Missing boundary")
        fields, files = _read_parts(
            stream, boundary, content_length, stream_factory=self.stream_factory,
            max_form_memory_size=self.max_form_memory_size,
            max_form_parts=self.max_form_parts)
        return stream, self.cls(fields), self.cls(files)


def _read_parts(
    stream: IO[bytes], boundary: str, content_length: int | None, *, stream_factory: Any,
    max_form_memory_size: int | None, max_form_parts: int | None,
) -> tuple[list[tuple[str, str]], list[tuple[str, FileStorage]]]:
    """Every part of the body, text parts as strings and file parts in ``stream_factory``'s
    containers. Raises ``ValueError`` for a malformed body, 413 past a limit."""
    # An empty boundary, one with a line break or one that is not UTF-8 raises a ValueError.
    parser = UnfoldedPartParser(boundary, max_header_count=MAX_PART_HEADERS)
    fields: list[tuple[str, str]] = []
    files: list[tuple[str, FileStorage]] = []
    parts = 0
    segment: MultipartSegment | None = None
    filename: str | None = None  # the current part's, read once at its start
    text: list[bytes] = []
    text_size = 0
    container: IO[bytes] | None = None
    with parser:  # leaving it checks that the body ended with the closing boundary
        while not parser.closed:
            for event in parser.parse(stream.read(CHUNK)):  # b"" (the end) closes the parser
                if isinstance(event, MultipartSegment):
                    parts += 1
                    if max_form_parts is not None and parts > max_form_parts:
                        raise RequestEntityTooLarge()  # as Werkzeug answers too many parts
                    segment, text, text_size = event, [], 0
                    filename = _filename(event)
                    container = None if filename is None else stream_factory(
                        total_content_length=content_length, filename=filename,
                        content_type=event.header("Content-Type"),
                        content_length=_declared_length(event))
                elif event is None:  # the part's end: the parser always began one first
                    if segment is None:
                        raise ValueError("A part ended that never began")
                    name = segment.name or ""
                    if container is None:
                        fields.append((name, _decode(b"".join(text), segment.charset)))
                    else:
                        container.seek(0)
                        files.append((name, FileStorage(
                            container, filename, name,
                            headers=Headers(segment.headerlist))))
                    segment, container = None, None
                elif container is not None:
                    container.write(event)
                else:
                    text_size += len(event)
                    if max_form_memory_size is not None and text_size > max_form_memory_size:
                        raise RequestEntityTooLarge()
                    text.append(event)
    return fields, files


def _filename(segment: MultipartSegment) -> str | None:
    """The part's file name, or None for a text part.

    ``multipart`` reads browsers' ``filename="..."``; a ``filename*=`` (RFC 2231, which old
    HTTP libraries sent for a non-ASCII name) or a tab before the parameter it leaves unread,
    which would make a picture a text field (and a large one a 413 that loses the words).
    Those rare headers are read again by Werkzeug's header parser, as before."""
    if segment.filename is not None:
        return str(segment.filename)
    disposition = segment.header("Content-Disposition", "") or ""
    if "filename" not in disposition.lower():
        return None
    found = parse_options_header(disposition)[1].get("filename")
    return None if found is None else str(found)


def _declared_length(segment: MultipartSegment) -> int:
    try:
        return max(0, int(segment.header("Content-Length", "0")))
    except ValueError:
        return 0


def _decode(data: bytes, charset: str | None) -> str:
    charset = (charset or "").lower()
    return data.decode(charset if charset in PART_CHARSETS else "utf-8", "replace")
