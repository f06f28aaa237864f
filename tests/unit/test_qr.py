"""QR images of credit codes (credit_codes.qr): the PNG reads back with a real decoder (zxing-cpp), and
the compact SVG paints exactly the symbol's dark modules, in a tenth of qrcode's own SVG.
(tests/browser/test_code_page.py reads the SVG back from Chromium's rendering.)"""

from __future__ import annotations

import io
import re
import secrets

import pytest
import qrcode
import qrcode.image.svg
import zxingcpp
from PIL import Image

from credit_codes import qr


def token(length: int) -> str:
    """A stand-in for a credit code: three base64url parts, as random (and incompressible)."""
    body = secrets.token_urlsafe(length)[: length - 2]
    return f"{body[: length // 4]}.{body[length // 4 : -86]}.{body[-86:]}"


LENGTHS = [
    120,
    337,
    400,
]  # a short code, a credit code (335–338 characters), near version 15's limit


def painted(svg: str) -> set[tuple[int, int]]:
    """The modules the SVG's stroked path covers: each line is one row's run of modules."""
    strokes = re.findall(r'<path stroke="#000" d="([^"]*)"', svg)
    assert len(strokes) == 1, "one path for all the dark modules"
    cells: set[tuple[int, int]] = set()
    x = y = 0.0
    for command, dx, dy, run in re.findall(r"([Mm])(-?\d+) (-?[\d.]+)h(\d+)", strokes[0]):
        x, y = (float(dx), float(dy)) if command == "M" else (x + float(dx), y + float(dy))
        assert y % 1 == 0.5, "a line runs through the middle of its row"
        cells.update((int(x) + i, int(y)) for i in range(int(run)))
        x += int(run)
    return cells


@pytest.mark.parametrize("length", LENGTHS)
def test_the_svg_paints_exactly_the_dark_modules(length: int) -> None:
    code = token(length)
    symbol = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=qr.BORDER)
    symbol.add_data(code)
    symbol.make(fit=True)
    matrix = symbol.get_matrix()
    dark = {(x, y) for y, row in enumerate(matrix) for x, on in enumerate(row) if on}
    svg = qr.render_svg(code)
    side = len(matrix)
    assert f'viewBox="0 0 {side} {side}"' in svg and f"h{side}v{side}H0z" in svg  # white ground
    assert painted(svg) == dark
    # A run of modules is one stroke: far fewer strokes than modules, and a tenth of the bytes.
    assert len(re.findall("[Mm]", svg)) < len(dark) / 2
    own = symbol.make_image(image_factory=qrcode.image.svg.SvgPathImage).to_string()
    assert len(svg) * 5 < len(own)


@pytest.mark.parametrize("length", LENGTHS)
def test_the_png_reads_back_as_the_same_code_at_level_m(length: int) -> None:
    code = token(length)
    image = Image.open(io.BytesIO(qr.render_png(code)))
    found = zxingcpp.read_barcodes(
        image, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    )
    assert [b.text for b in found] == [code]
    assert found[0].ec_level == "M" and int(found[0].extra["Version"]) == qr.qr_version(code)


def test_a_code_too_long_for_version_15_is_refused() -> None:
    with pytest.raises(qr.CodeTooLong):
        qr.render_svg(token(500))
