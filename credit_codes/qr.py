"""QR rendering of credit codes: PNG and SVG, error correction M, at most version 15."""

from __future__ import annotations

import io

import qrcode
from qrcode.constants import ERROR_CORRECT_M

MAX_VERSION = 15
BORDER = 4  # modules of quiet zone on each side, as the QR standard asks


class CodeTooLong(ValueError):
    """The token would need a QR code larger than version 15 (phones scan those poorly)."""


def _qr(token: str, box_size: int) -> qrcode.QRCode:
    qr = qrcode.QRCode(
        version=None, error_correction=ERROR_CORRECT_M, box_size=box_size, border=BORDER
    )
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
    """The code as a compact SVG: one module a user unit, each row's runs of dark modules one stroke.

    qrcode's own SVG writes every dark module as its own square (63 KB for a credit code); a run of
    modules drawn as one horizontal stroke, with relative moves, is about a tenth of that. The size is
    ``box_size`` tenths of a millimetre a module, as qrcode's images have it.
    """
    matrix: list[list[bool]] = _qr(token, 1).get_matrix()  # the quiet zone included
    side = len(matrix)
    mm = f"{side * box_size / 10:g}mm"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{mm}" height="{mm}" '
        f'viewBox="0 0 {side} {side}" shape-rendering="crispEdges">'
        f'<path fill="#fff" d="M0 0h{side}v{side}H0z"/>'
        f'<path stroke="#000" d="{_dark_runs(matrix)}"/></svg>'
    )


def _dark_runs(matrix: list[list[bool]]) -> str:
    """A path of one horizontal line (stroke width 1, through the row's middle) per run of dark
    modules, each move relative to where the last line ended."""
    steps: list[str] = []
    at: tuple[int, int] | None = None  # where the pen is: (x, row)
    for y, row in enumerate(matrix):
        x = 0
        while x < len(row):
            if not row[x]:
                x += 1
                continue
            start = x
            while x < len(row) and row[x]:
                x += 1
            if at is None:
                steps.append(f"M{start} {y}.5h{x - start}")
            else:
                steps.append(f"m{start - at[0]} {y - at[1]}h{x - start}")
            at = (x, y)
    return "".join(steps)
