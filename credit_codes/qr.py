"""QR rendering of credit codes: PNG and SVG, error correction M, at most version 15."""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg
from qrcode.constants import ERROR_CORRECT_M

MAX_VERSION = 15


class CodeTooLong(ValueError):
    """The token would need a QR code larger than version 15 (phones scan those poorly)."""


def _qr(token: str, box_size: int) -> qrcode.QRCode:
    qr = qrcode.QRCode(version=None, error_correction=ERROR_CORRECT_M, box_size=box_size, border=4)
    qr.add_data(token)
    qr.make(fit=True)
    if qr.version > MAX_VERSION:
        raise CodeTooLong(f"needs QR version {qr.version}, the limit is {MAX_VERSION}")
    return qr


def qr_version(token: str) -> int:
    version: int = _qr(token, 1).version
    return version


def render_png(token: str, *, box_size: int = 6) -> bytes:
    image = _qr(token, box_size).make_image(fill_color="black", back_color="white")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def render_svg(token: str, *, box_size: int = 6) -> str:
    image = _qr(token, box_size).make_image(image_factory=qrcode.image.svg.SvgPathImage)
    svg: bytes = image.to_string()
    return svg.decode("utf-8")
