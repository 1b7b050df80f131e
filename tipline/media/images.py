"""Re-encode a reporter's image so that nothing but the pixels survives.

Photos carry GPS coordinates, device serials, timestamps and editing history in EXIF, XMP,
IPTC, ICC and PNG text chunks. Stripping tags one by one misses whatever the next camera
adds, so this module decodes the image, copies only its pixels into a new image that has no
metadata at all, and encodes that. Only a short allowlist of formats is ever parsed (Pillow
would otherwise try EPS, which runs Ghostscript, and dozens of rarely used decoders).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

# 40 megapixels covers every phone camera's default mode and any screenshot, and keeps a
# decoded RGBA frame under ~160 MB in a sync worker.
MAX_PIXELS = 40_000_000

# Formats a phone or a browser produces. HEIF is added when pillow-heif is installed.
_LOSSY = {"JPEG", "MPO", "HEIF", "AVIF"}
_LOSSLESS = {"PNG", "GIF", "BMP", "WEBP", "TIFF"}
_ACCEPTED_DECLARED = {"", "application/octet-stream", "binary/octet-stream"}

# Optional: HEIC photos straight from an iPhone, when pillow-heif is installed.
with contextlib.suppress(ImportError):
    importlib.import_module("pillow_heif").register_heif_opener()


class UnsupportedMedia(ValueError):
    """Not an image we can safely decode; the message is safe to show to a reporter."""


@dataclass(frozen=True)
class SanitizedImage:
    data: bytes
    content_type: str
    width: int
    height: int


def sanitize_image(
    data: bytes, declared_type: str | None, *, max_pixels: int = MAX_PIXELS
) -> SanitizedImage:
    """Decode ``data``, apply its EXIF orientation, and re-encode the first frame bare.

    JPEG-like photos (JPEG, MPO, HEIF, AVIF, opaque WEBP) come out as JPEG; everything else
    (PNG, GIF, BMP, TIFF, WEBP with transparency) as PNG. ``declared_type`` is only advisory
    (browsers and carriers get it wrong): a declared non-image type is refused, but an image
    type is never trusted without decoding.
    """
    declared = (declared_type or "").split(";", 1)[0].strip().lower()
    if declared not in _ACCEPTED_DECLARED and not declared.startswith("image/"):
        raise UnsupportedMedia("only pictures can be attached")
    if not data:
        raise UnsupportedMedia("the file is empty")

    allowed = _openers()
    with warnings.catch_warnings():
        # Pillow warns between MAX_IMAGE_PIXELS and twice that; treat the warning as a refusal.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=allowed) as src:
                fmt = (src.format or "").upper()
                width, height = src.size
                if width <= 0 or height <= 0 or width * height > max_pixels:
                    raise UnsupportedMedia("the picture is too large")
                src.seek(0)  # first frame only for GIF/WEBP/TIFF/MPO
                oriented = ImageOps.exif_transpose(src)
                oriented.load()
                pixels = _bare_copy(oriented)
        except UnsupportedMedia:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise UnsupportedMedia("the picture is too large") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError,
                IndexError, TypeError, KeyError, MemoryError, ZeroDivisionError) as exc:
            # Each of these has been raised by some Pillow decoder on malformed input.
            raise UnsupportedMedia("this file is not a picture we can read") from exc

    as_jpeg = fmt in _LOSSY or (fmt == "WEBP" and "A" not in pixels.getbands())
    out = io.BytesIO()
    if as_jpeg:
        if pixels.mode not in ("L", "RGB"):
            pixels = pixels.convert("RGB")
        pixels.save(out, format="JPEG", quality=88)
        content_type = "image/jpeg"
    else:
        pixels.save(out, format="PNG", compress_level=6)
        content_type = "image/png"
    return SanitizedImage(out.getvalue(), content_type, pixels.width, pixels.height)


def _openers() -> list[str]:
    """The allowlisted decoders this Pillow build has (MPO files open through JPEG)."""
    Image.init()
    return sorted((_LOSSY | _LOSSLESS) & set(Image.OPEN))


def _bare_copy(img: Image.Image) -> Image.Image:
    """A new image holding only ``img``'s pixels: no info dict, no EXIF, no ICC, no text."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode not in ("1", "L", "LA", "RGB", "RGBA"):
        has_alpha = "A" in img.getbands() or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
    if img.mode == "RGBA" and img.getchannel("A").getextrema() == (255, 255):
        img = img.convert("RGB")  # fully opaque: no need for an alpha channel
    return Image.frombytes(img.mode, img.size, img.tobytes())
