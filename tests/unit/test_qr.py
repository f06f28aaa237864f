"""QR images of credit codes (credit_codes.qr): the PNG reads back with a real decoder (zxing-cpp), and
the compact SVG paints exactly the symbol's dark modules, in a tenth of qrcode's own SVG.
(tests/browser/test_code_page.py reads the SVG back from Chromium's rendering.)"""

from __future__ import annotations

import io
import random
import re
import string

import pytest
import qrcode
import qrcode.image.svg
import zxingcpp
from PIL import Image

from credit_codes import qr


def token(length: int) -> str:
    """A stand-in for a credit code: three base64url parts of random (incompressible) characters,
    the same for the same length, so that a failure can be run again."""
    chars = random.Random(length).choices(string.ascii_letters + string.digits + "-_", k=length - 2)
    body = "".join(chars)
    return f"{body[: length // 4]}.{body[length // 4 : -86]}.{body[-86:]}"


LENGTHS = [
    120,
    337,
    400,
]  # a short code, a credit code (335–338 characters), near version 15's limit


def strokes(svg: str) -> list[tuple[int, int, int]]:
    """The SVG's dark lines as (x, row, modules): each line runs through the middle of its row."""
    paths = re.findall(r'<path stroke="#000" d="([^"]*)"', svg)
    assert len(paths) == 1, "one path for all the dark modules"
    lines: list[tuple[int, int, int]] = []
    x = y = 0.0
    for command, dx, dy, run in re.findall(r"([Mm])(-?\d+) (-?[\d.]+)h(\d+)", paths[0]):
        x, y = (float(dx), float(dy)) if command == "M" else (x + float(dx), y + float(dy))
        assert y % 1 == 0.5, "a line runs through the middle of its row"
        lines.append((int(x), int(y), int(run)))
        x += int(run)
    return lines


@pytest.mark.parametrize("length", LENGTHS)
def test_the_svg_paints_exactly_the_dark_modules(length: int) -> None:
    code = token(length)
    symbol = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        border=qr.BORDER,
        mask_pattern=qr.MASK_PATTERN,
    )
    symbol.add_data(code)
    symbol.make(fit=True)
    matrix = symbol.get_matrix()
    assert qr.matrix(code) == matrix
    dark = {(x, y) for y, row in enumerate(matrix) for x, on in enumerate(row) if on}
    svg = qr.render_svg(code)
    side = len(matrix)
    assert f'viewBox="0 0 {side} {side}"' in svg and f"h{side}v{side}H0z" in svg  # white ground
    lines = strokes(svg)
    assert {(x + i, y) for x, y, run in lines for i in range(run)} == dark
    # Each run of dark modules in a row is one line (a run starts where its left neighbour is light).
    runs = {(x, y) for x, y in dark if (x - 1, y) not in dark}
    assert {(x, y) for x, y, _ in lines} == runs and len(lines) == len(runs)
    # The former SVG, qrcode's own at the same size, drew each module as a square: 5+ times the bytes.
    former = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=6, border=qr.BORDER
    )
    former.add_data(code)
    former_svg = former.make_image(image_factory=qrcode.image.svg.SvgPathImage).to_string()
    assert len(svg) * 5 < len(former_svg)


@pytest.mark.parametrize("length", LENGTHS)
def test_the_png_reads_back_as_the_same_code_at_level_m(length: int) -> None:
    code = token(length)
    image = Image.open(io.BytesIO(qr.render_png(code)))
    found = zxingcpp.read_barcodes(
        image, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    )
    assert [b.text for b in found] == [code]
    assert found[0].ec_level == "M" and int(found[0].extra["Version"]) == qr.qr_version(code)
    # Black on white, six pixels a module, the quiet zone of four modules included.
    side = (qr.qr_version(code) * 4 + 17 + 2 * qr.BORDER) * 6
    assert image.size == (side, side) and image.mode == "1"
    assert image.getpixel((0, 0)) == 255 and image.getpixel((4 * 6 + 1, 4 * 6 + 1)) == 0  # a finder


@pytest.mark.parametrize("mask", range(8))
def test_a_fixed_mask_reads_back_whichever_it_is(mask: int) -> None:
    """The server fixes the mask pattern instead of trying all eight (qr.MASK_PATTERN); any of them
    reads back, so the choice is one of cost, not of correctness."""
    code = token(337)
    symbol = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=4, mask_pattern=mask
    )
    symbol.add_data(code)
    symbol.make(fit=True)
    image = symbol.make_image().get_image().convert("L")
    assert [b.text for b in zxingcpp.read_barcodes(image)] == [code]


def test_a_code_too_long_for_version_15_is_refused() -> None:
    with pytest.raises(qr.CodeTooLong):
        qr.render_svg(token(500))


def test_the_codewords_and_version_are_qrcodes_own_for_every_kind_of_data() -> None:
    """qr.matrix makes qrcode's codewords and picks its version itself (faster); the symbol must be
    qrcode's own, whatever the data's modes (runs of digits and of capitals go in their own
    chunks) and whatever the version and its block structure."""
    rng = random.Random(14)
    alphabet = string.ascii_letters + string.digits + "-_."
    samples = [""] + [
        "".join(rng.choices(alphabet, k=length)) for length in (1, 17, 60, 151, 250, 333, 344, 380)
    ]
    samples += [
        "0123456789" * 5 + token(200),  # a numeric chunk
        token(120) + "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123-.:" + token(100),  # an alphanumeric chunk
        "A" * 7 + "1" * 31 + "b" * 2,
    ]
    for data in samples:
        symbol = qrcode.QRCode(
            error_correction=qrcode.constants.ERROR_CORRECT_M,
            border=qr.BORDER,
            mask_pattern=qr.MASK_PATTERN,
        )
        symbol.add_data(data)
        symbol.make(fit=True)
        assert qr.qr_version(data) == symbol.version, data
        assert qr.matrix(data) == symbol.get_matrix(), data
