"""Pictures uploaded with a tip or a reply: kept in memory, bounded, and re-encoded.

Werkzeug's ``MAX_CONTENT_LENGTH`` answers an oversize request with a bare 413 before any field
is parsed, so the reporter's words would be gone. Instead, on the reporter's pages each file
part goes into a ``CappedUpload`` that keeps at most ``max_upload_bytes + 1`` bytes and counts
the rest: the text fields are always parsed, and an oversize picture becomes an ordinary form
error. Uploads stay in memory (never a temporary file on disk) until they are re-encoded
without metadata and sealed.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from flask import Request, current_app
from flask_babel import gettext as _
from werkzeug.datastructures import FileStorage, ImmutableMultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from tipline.intake.services import AttachmentIn
from tipline.media import UnsupportedMedia, sanitize_image

# Four pictures cover a few screenshots of a thread; more belongs in a follow-up reply.
MAX_FILES = 4
# Reporter endpoints read (and throw away) up to this many times the per-file limit, so a
# too-large video still gets a friendly form error instead of a bare 413.
READ_FACTOR = 10
REPORTER_ENDPOINTS = frozenset({"intake.report", "intake.followup_tip"})


class UploadRefused(ValueError):
    """A picture cannot be accepted; the message is translated and safe to show."""


class CappedUpload(io.BytesIO):
    """A write-once in-memory buffer that keeps ``cap + 1`` bytes and counts the rest."""

    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap = cap
        self.total = 0
        self._kept = 0

    @property
    def overflowed(self) -> bool:
        return self.total > self.cap

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.total += len(chunk)
        room = self.cap + 1 - self._kept
        if room > 0:
            kept = chunk[:room]
            super().write(kept)
            self._kept += len(kept)
        return len(chunk)


class ReporterRequest(Request):
    """Flask's request with bounded in-memory uploads on the reporter's pages.

    Installed on the app by the intake blueprint; other endpoints keep Werkzeug's defaults.
    """

    _upload_parts = 0

    def _is_reporter_endpoint(self) -> bool:
        return self.endpoint in REPORTER_ENDPOINTS

    @property
    def max_content_length(self) -> int | None:
        base = super().max_content_length
        if not self._is_reporter_endpoint() or not current_app:
            return base
        per_file = int(current_app.extensions["tipline"].settings.max_upload_bytes)
        return max(base or 0, per_file * READ_FACTOR)

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        self._max_content_length = value

    def _load_form_data(self) -> None:
        """After a 413, later reads of ``form`` (the locale selector, the error page) see an
        empty form instead of raising the same error again while the 413 page renders."""
        try:
            super()._load_form_data()
        except RequestEntityTooLarge:
            self.__dict__.setdefault("form", ImmutableMultiDict())
            self.__dict__.setdefault("files", ImmutableMultiDict())
            raise

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        if not self._is_reporter_endpoint() or not current_app:
            return super()._get_file_stream(
                total_content_length, content_type, filename, content_length
            )
        self._upload_parts += 1
        cap = int(current_app.extensions["tipline"].settings.max_upload_bytes)
        # Parts beyond the allowed count keep one byte: enough to know they were there.
        return CappedUpload(cap if self._upload_parts <= MAX_FILES else 0)


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_files: int = MAX_FILES


def chosen_files(files: Iterable[FileStorage]) -> list[FileStorage]:
    """The file parts that hold a file (an empty file input still sends a nameless part)."""
    return [f for f in files if f is not None and (f.filename or _size(f))]


def read_images(files: Sequence[FileStorage], limits: UploadLimits) -> list[AttachmentIn]:
    """Check count and size, re-encode each picture without metadata; raise ``UploadRefused``."""
    chosen = chosen_files(files)
    if len(chosen) > limits.max_files:
        raise UploadRefused(
            _("You can attach up to %(n)d pictures at a time.", n=limits.max_files)
        )
    out: list[AttachmentIn] = []
    for storage in chosen:
        stream = storage.stream
        if isinstance(stream, CappedUpload) and stream.overflowed:
            raise UploadRefused(_too_large(limits.max_bytes))
        stream.seek(0)
        data = stream.read(limits.max_bytes + 1)
        if len(data) > limits.max_bytes:
            raise UploadRefused(_too_large(limits.max_bytes))
        try:
            image = sanitize_image(data, storage.mimetype or None)
        except UnsupportedMedia:
            raise UploadRefused(
                _("Only pictures can be attached (for example a photo or a screenshot). "
                  "Other kinds of files cannot be sent here.")
            ) from None
        out.append(AttachmentIn(kind="image", content_type=image.content_type, data=image.data))
    return out


def _too_large(max_bytes: int) -> str:
    megabytes = max(1, max_bytes // (1024 * 1024))
    return _("Each picture must be smaller than %(mb)d MB. Please choose a smaller one.",
             mb=megabytes)


def _size(storage: FileStorage) -> int:
    stream = storage.stream
    if isinstance(stream, CappedUpload):
        return stream.total
    try:
        pos = stream.tell()
        stream.seek(0, io.SEEK_END)
        size = stream.tell()
        stream.seek(pos)
    except (OSError, ValueError):
        return 0
    return int(size)
