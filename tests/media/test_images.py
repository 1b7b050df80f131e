"""sanitize_image: metadata never survives, the picture does, and non-pictures are refused."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, PngImagePlugin

from tipline.media import SanitizedImage, UnsupportedMedia, sanitize_image

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def _jpeg_with_gps(size: tuple[int, int] = (64, 32), orientation: int = 1) -> bytes:
    img = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Model X"  # Model
    exif[0x0131] = "Editor 1.0"  # Software
    exif[GPS_IFD] = {1: "N", 2: (38.0, 37.0, 12.5), 3: "W", 4: (90.0, 11.0, 44.1)}
    out = io.BytesIO()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">secret-location</x:xmpmeta>'
    img.save(out, "JPEG", exif=exif.tobytes(), icc_profile=b"fake-icc-profile", xmp=xmp)
    return out.getvalue()


def _reopen(result: SanitizedImage) -> Image.Image:
    img = Image.open(io.BytesIO(result.data))
    img.load()
    return img


def test_gps_exif_is_gone_and_the_picture_still_decodes() -> None:
    raw = _jpeg_with_gps()
    src = Image.open(io.BytesIO(raw))
    assert src.getexif().get_ifd(GPS_IFD)  # the fixture really carries GPS
    assert b"PhoneMaker" in raw and b"secret-location" in raw

    result = sanitize_image(raw, "image/jpeg")

    assert result.content_type == "image/jpeg"
    out = _reopen(result)
    assert out.format == "JPEG"
    assert out.size == (64, 32) == (result.width, result.height)
    assert not out.getexif()  # no EXIF at all, so no GPS IFD
    assert "exif" not in out.info and "icc_profile" not in out.info and "xmp" not in out.info
    for marker in (b"Exif\x00\x00", b"PhoneMaker", b"Model X", b"secret-location", b"fake-icc"):
        assert marker not in result.data
    r, g, b = out.getpixel((10, 10))  # type: ignore[misc]
    assert r > 150 and g < 80 and b < 80


def test_exif_orientation_is_applied_before_dropping_it() -> None:
    result = sanitize_image(_jpeg_with_gps((64, 32), orientation=6), None)
    assert (result.width, result.height) == (32, 64)
    assert _reopen(result).size == (32, 64)


def test_png_text_chunks_are_dropped() -> None:
    img = Image.new("RGBA", (20, 10), (0, 0, 255, 128))
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Student")
    info.add_text("Comment", "taken at 123 Main St", zip=True)
    info.add_itxt("Description", "iTXt secret", lang="en")
    out = io.BytesIO()
    img.save(out, "PNG", pnginfo=info)
    assert b"Jane Student" in out.getvalue()

    result = sanitize_image(out.getvalue(), "image/png")

    assert result.content_type == "image/png"
    again = _reopen(result)
    assert again.format == "PNG" and again.mode == "RGBA"
    assert not getattr(again, "text", {})
    for chunk in (b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"iCCP"):
        assert chunk not in result.data
    assert again.getpixel((3, 3)) == (0, 0, 255, 128)


def test_gif_keeps_only_the_first_frame_as_png() -> None:
    frames = [Image.new("P", (8, 8), i) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], comment=b"hello")
    result = sanitize_image(out.getvalue(), "image/gif")
    img = _reopen(result)
    assert result.content_type == "image/png"
    assert getattr(img, "n_frames", 1) == 1
    assert b"hello" not in result.data


def test_opaque_webp_becomes_jpeg() -> None:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 200, 1)).save(out, "WEBP", exif=Image.Exif().tobytes())
    result = sanitize_image(out.getvalue(), "image/webp")
    assert result.content_type == "image/jpeg"
    assert _reopen(result).format == "JPEG"


@pytest.mark.parametrize(
    ("data", "declared"),
    [
        (b"%PDF-1.7\n1 0 obj<<>>endobj\n", "application/pdf"),
        (b"%PDF-1.7\n1 0 obj<<>>endobj\n", "image/jpeg"),  # lying content type
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
         "image/svg+xml"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", None),  # never run Ghostscript
        (b"MZ\x90\x00" + b"\x00" * 200, "application/octet-stream"),
        (b"", "image/png"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png"),  # truncated
    ],
)
def test_non_images_are_refused_with_a_safe_message(data: bytes, declared: str | None) -> None:
    with pytest.raises(UnsupportedMedia) as info:
        sanitize_image(data, declared)
    assert isinstance(info.value, ValueError)
    assert "Traceback" not in str(info.value) and len(str(info.value)) < 80


def test_declared_non_image_type_is_refused_even_for_real_pixels() -> None:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "PNG")
    with pytest.raises(UnsupportedMedia):
        sanitize_image(out.getvalue(), "text/html")


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size: what a decompression bomb looks like."""
    small = io.BytesIO()
    Image.new("1", (1, 1)).save(small, "PNG")
    data = bytearray(small.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


@pytest.mark.parametrize(
    "dims",
    [
        (7_000, 7_000),  # over our own cap, under Pillow's
        (12_000, 12_000),  # Pillow's DecompressionBombWarning range
        (30_000, 30_000),  # Pillow's DecompressionBombError range
    ],
)
def test_decompression_bombs_are_refused_before_decoding(dims: tuple[int, int]) -> None:
    with pytest.raises(UnsupportedMedia, match="too large"):
        sanitize_image(_png_claiming(*dims), "image/png")


def test_a_real_bomb_of_zeros_is_refused() -> None:
    # 8000x8000 one-bit pixels compress to a few kilobytes and decode to 64 megapixels.
    out = io.BytesIO()
    Image.new("1", (8_000, 8_000)).save(out, "PNG")
    assert len(out.getvalue()) < 200_000
    with pytest.raises(UnsupportedMedia, match="too large"):
        sanitize_image(out.getvalue(), "image/png")
