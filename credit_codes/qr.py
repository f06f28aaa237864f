"""QR rendering of credit codes on the server: PNG and SVG, error correction M, at most version 15.

The citizen's phone page draws its codes itself (citycredit/web/static/vendor/qrcode-generator); these
images are for the API (``Accept: image/png`` or ``image/svg+xml``), the CLI and the page's no-script
fallback. Each image is one symbol, built once: qrcode's ``make`` with its mask pattern fixed
(:data:`MASK_PATTERN`) instead of trying all eight and scoring each (nine tenths of its time), then
the PNG and SVG drawn from the symbol's matrix directly rather than module by module.
"""

from __future__ import annotations

import io
import re

import qrcode
from PIL import Image
from qrcode.constants import ERROR_CORRECT_M

MAX_VERSION = 15
BORDER = 4  # modules of quiet zone on each side, as the QR standard asks
# Any mask reads back; the standard's choice (the lowest penalty of eight trials) costs eight symbols.
# Mask 2 (column j mod 3 = 0) has the lowest mean penalty over random credit codes, was qrcode's own
# choice for 23 of 60 of them, and stays within 12 % of the best one's penalty for every one.
MASK_PATTERN = 2
_DARK_RUN = re.compile(rb"\x01+")
_WHITE_LIGHT = bytes([255, 0]) + bytes(254)  # a module (0 light, 1 dark) as a grey level


class CodeTooLong(ValueError):
    """The token would need a QR code larger than version 15 (phones scan those poorly)."""


def _qr(token: str) -> qrcode.QRCode:
    qr = qrcode.QRCode(
        version=None,
        error_correction=ERROR_CORRECT_M,
        box_size=1,
        border=BORDER,
        mask_pattern=MASK_PATTERN,
    )
    qr.add_data(token)
    qr.best_fit()  # the smallest version: cheap, no symbol is built yet
    if qr.version > MAX_VERSION:
        raise CodeTooLong(f"needs QR version {qr.version}, the limit is {MAX_VERSION}")
    return qr


def qr_version(token: str) -> int:
    version: int = _qr(token).version
    return version


def matrix(token: str) -> list[list[bool]]:
    """The symbol's modules, row by row, the quiet zone included (True is dark)."""
    qr = _qr(token)
    qr.make(fit=False)
    modules: list[list[bool]] = qr.get_matrix()
    return modules


def render_png(token: str, *, box_size: int = 6) -> bytes:
    """Black on white, ``box_size`` pixels a module: one pixel a module, scaled without smoothing."""
    modules = matrix(token)
    side = len(modules)
    grey = b"".join(map(bytes, modules)).translate(_WHITE_LIGHT)
    image = Image.frombytes("L", (side, side), grey).convert("1", dither=Image.Dither.NONE)
    image = image.resize((side * box_size, side * box_size), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def render_svg(token: str, *, box_size: int = 6) -> str:
    """The code as a compact SVG: one module a user unit, each row's runs of dark modules one stroke.

    qrcode's own SVG writes every dark module as its own square (63 KB for a credit code); a run of
    modules drawn as one horizontal stroke, with relative moves, is about a tenth of that. The size is
    ``box_size`` tenths of a millimetre a module, as qrcode's images have it.
    """
    modules = matrix(token)
    side = len(modules)
    mm = f"{side * box_size / 10:g}mm"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{mm}" height="{mm}" '
        f'viewBox="0 0 {side} {side}" shape-rendering="crispEdges">'
        f'<path fill="#fff" d="M0 0h{side}v{side}H0z"/>'
        f'<path stroke="#000" d="{_dark_runs(modules)}"/></svg>'
    )


def _dark_runs(modules: list[list[bool]]) -> str:
    """A path of one horizontal line (stroke width 1, through the row's middle) per run of dark
    modules, each move relative to where the last line ended."""
    steps: list[str] = []
    at: tuple[int, int] | None = None  # where the pen is: (x, row)
    for y, row in enumerate(modules):
        for run in _DARK_RUN.finditer(bytes(row)):  # a row as bytes: 1 dark, 0 light
            x, end = run.span()
            if at is None:
                steps.append(f"M{x} {y}.5h{end - x}")
            else:
                steps.append(f"m{x - at[0]} {y - at[1]}h{end - x}")
            at = (end, y)
    return "".join(steps)
