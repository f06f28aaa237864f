"""QR rendering of credit codes on the server: PNG and SVG, error correction M, at most version 15.

The citizen's phone page draws its codes itself (citycredit/web/static/vendor/qrcode-generator); these
images are for the API (``Accept: image/png`` or ``image/svg+xml``), the CLI and the page's no-script
fallback. Each image is one symbol, built once: qrcode's ``make`` with its mask pattern fixed
(:data:`MASK_PATTERN`) instead of trying all eight and scoring each (nine tenths of its time), then
the PNG and SVG drawn from the symbol's matrix directly rather than module by module.
"""

from __future__ import annotations

import functools
import io
import re

import qrcode
from PIL import Image
from qrcode import base, util
from qrcode.constants import ERROR_CORRECT_M
from qrcode.exceptions import DataOverflowError

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
    qr.version = _smallest_version(qr.data_list, qr.error_correction)
    if qr.version > MAX_VERSION:
        raise CodeTooLong(f"needs QR version {qr.version}, the limit is {MAX_VERSION}")
    return qr


def qr_version(token: str) -> int:
    version: int = _qr(token).version
    return version


def matrix(token: str) -> list[list[bool]]:
    """The symbol's modules, row by row, the quiet zone included (True is dark)."""
    qr = _qr(token)
    # qrcode's own symbol, from codewords made here: its data bits and Reed-Solomon blocks, as
    # qrcode.util.create_data makes them, but arithmetic on one integer and a table-driven division
    # instead of a bit at a time and polynomial objects (three quarters of what is left of its time).
    qr.data_cache = _codewords(qr.version, qr.error_correction, qr.data_list)
    qr.make(fit=False)
    modules: list[list[bool]] = qr.get_matrix()
    return modules


# --- the codewords, as qrcode makes them, faster ----------------------------------------------------


class _Bits:
    """What qrcode's ``QRData.write`` writes into (it calls ``put`` only): bits kept in one integer."""

    def __init__(self) -> None:
        self.value = 0
        self.length = 0

    def put(self, number: int, length: int) -> None:
        self.value = (self.value << length) | (number & ((1 << length) - 1))
        self.length += length


def _data_bits(data: util.QRData) -> int:
    count = len(data)
    if data.mode == util.MODE_NUMBER:
        return 10 * (count // 3) + (0, 4, 7)[count % 3]
    if data.mode == util.MODE_ALPHA_NUM:
        return 11 * (count // 2) + 6 * (count % 2)
    return 8 * count


def _smallest_version(data_list: list[util.QRData], error_correction: int) -> int:
    """What qrcode's ``best_fit`` finds, without writing the data twice to count its bits."""
    limits = util.BIT_LIMIT_TABLE[error_correction]
    for version in range(1, 41):
        sizes = util.mode_sizes_for_version(version)
        needed = sum(4 + sizes[data.mode] + _data_bits(data) for data in data_list)
        if needed <= limits[version]:
            return version
    raise DataOverflowError("the data does not fit in a version-40 QR code")


def _codewords(version: int, error_correction: int, data_list: list[util.QRData]) -> list[int]:
    """``qrcode.util.create_data``'s result: data codewords, padded, then error correction, each
    interleaved across the blocks."""
    bits = _Bits()
    for data in data_list:
        bits.put(data.mode, 4)
        bits.put(len(data), util.length_in_bits(data.mode, version))
        data.write(bits)
    blocks = base.rs_blocks(version, error_correction)
    limit = sum(block.data_count * 8 for block in blocks)
    if bits.length > limit:
        raise DataOverflowError(f"{bits.length} bits, {limit} fit")
    bits.put(0, min(limit - bits.length, 4))  # the terminator
    bits.put(0, -bits.length % 8)
    padded = list(bits.value.to_bytes(bits.length // 8, "big"))
    padded += [util.PAD0, util.PAD1] * ((limit // 8 - len(padded)) // 2 + 1)
    padded = padded[: limit // 8]
    data_blocks: list[list[int]] = []
    ec_blocks: list[list[int]] = []
    offset = 0
    for block in blocks:
        data_blocks.append(padded[offset : offset + block.data_count])
        offset += block.data_count
        ec_blocks.append(_remainder(data_blocks[-1], block.total_count - block.data_count))
    return [
        *(b[i] for i in range(max(map(len, data_blocks))) for b in data_blocks if i < len(b)),
        *(b[i] for i in range(max(map(len, ec_blocks))) for b in ec_blocks if i < len(b)),
    ]


@functools.cache
def _generator_rows(degree: int) -> tuple[int, ...]:
    """For each byte f, f times the Reed-Solomon generator (after its leading 1) as one integer of
    ``degree`` bytes: the division below is then one shift and one XOR a data byte."""
    coefficients = [1]
    for i in range(degree):  # times (x - a^i): qrcode's generator (its LUT holds the same)
        shifted = [*coefficients, 0]
        for j, c in enumerate(coefficients):
            if c:
                shifted[j + 1] ^= base.EXP_TABLE[(base.LOG_TABLE[c] + i) % 255]
        coefficients = shifted
    logs = [base.LOG_TABLE[c] for c in coefficients[1:]]
    rows = [0]
    for factor in range(1, 256):
        shift = base.LOG_TABLE[factor]
        row = bytes(base.EXP_TABLE[(g + shift) % 255] for g in logs)
        rows.append(int.from_bytes(row, "big"))
    return tuple(rows)


def _remainder(data: list[int], degree: int) -> list[int]:
    """The error correction codewords: data times x^degree modulo the generator, over GF(256)."""
    rows = _generator_rows(degree)
    top, mask = 8 * (degree - 1), (1 << 8 * degree) - 1
    remainder = 0
    for byte in data:
        remainder = ((remainder << 8) & mask) ^ rows[(remainder >> top) ^ byte]
    return list(remainder.to_bytes(degree, "big"))


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
