"""Turning raw metadata bytes into the strings exiftool ``-n`` prints."""

from __future__ import annotations

__all__ = ["decode_text", "decode_utf16", "small_int"]


def decode_text(raw: bytes, padded: bool = False) -> str:
    """Decode an EXIF ASCII/UNDEFINED value: cut at the first NUL, trim, never fail.

    ``padded`` values (UNDEFINED byte blocks such as Panasonic's InternalSerialNumber) are not cut at a
    NUL: exiftool keeps every byte of them and its output drops the NULs, wherever they are. EXIF says
    ASCII but cameras and editors write UTF-8 and Latin-1 too; UTF-8 is tried first because it rejects
    Latin-1 text reliably, and Latin-1 decodes any byte, so hostile bytes cannot raise.
    """
    if padded:
        raw = raw.replace(b"\0", b"")
    else:
        cut = raw.find(b"\0")
        if cut >= 0:
            raw = raw[:cut]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.strip()


def decode_utf16(raw: bytes, little: bool) -> str:
    """Decode a fixed-size UTF-16 field (Reconyx serials) up to its first NUL character."""
    text = raw[: len(raw) & ~1].decode("utf-16-le" if little else "utf-16-be", errors="replace")
    return text.split("\0", 1)[0].strip()


def small_int(value: str, digits: int = 12) -> int | None:
    """A non-negative decimal of at most ``digits`` ASCII digits, else ``None``.

    ``str.isdigit`` accepts characters ``int`` refuses (superscripts such as "²"), and ``int`` refuses
    strings of more than 4,300 digits: metadata text is checked this way before it is converted.
    """
    if 0 < len(value) <= digits and value.isascii() and value.isdigit():
        return int(value)
    return None
