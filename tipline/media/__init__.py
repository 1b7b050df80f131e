"""Media taken in from reporters (web uploads, MMS): decoded, re-encoded, metadata dropped."""

from tipline.media.images import SanitizedImage, UnsupportedMedia, sanitize_image

__all__ = ["SanitizedImage", "UnsupportedMedia", "sanitize_image"]
