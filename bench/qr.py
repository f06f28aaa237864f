"""Benchmark the credit code's QR: what a renewal of the phone page costs, and the server's rendering
against zxing-cpp's writer (issue 14, "the QR code on the phone").

1. A renewal of the phone page (``GET /me/code.json``, the Flask app in this process on a scratch
   SQLite city, signed in and consented as the integration tests do): its bytes on the wire (target
   ≤ 1 KB: the token and its expiry; the phone draws the QR), and its CPU against what the former
   renewal cost, which also drew a server SVG with qrcode's automatic mask (the same view plus that
   render, measured here).
2. Server rendering (API ``Accept: image/png|image/svg+xml``, the CLI, the page's no-script PNG) on
   real credit codes from step 1: ``credit_codes.qr.render_svg`` / ``render_png`` (mask pattern fixed,
   images drawn from the matrix) against zxing-cpp's writer making the same symbol (level M, quiet
   zone 4) into SVG / PNG (6 px a module, one bit a pixel, PIL's PNG encoder; the symbol alone is
   reported too), and against the former rendering
   (qrcode's automatic mask: eight trial symbols scored; its PNG drawn module by module).

Every rate is the cheapest of ``--rounds`` batches of process CPU time (steadier than wall time on
a shared machine); ratios are rates, so > 1 means faster.

    .venv/bin/python bench/qr.py                 # about 30 s
    .venv/bin/python bench/qr.py --rounds 3 --batch 20 --json figures.json

The output ends with one line per target: ``RATIO <name> <value> target <op> <target> <met|MISSED>``.
"""

from __future__ import annotations

import argparse
import io
import json
import os

# Benchmarks make throwaway cities with throwaway secrets, as a developer machine does.
os.environ.setdefault("CITYCREDIT_ENV", "development")
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import qrcode  # noqa: E402
import zxingcpp  # noqa: E402
from PIL import Image  # noqa: E402
from qrcode.constants import ERROR_CORRECT_M  # noqa: E402
from ratios import Ratio  # noqa: E402  # bench/ratios.py

from credit_codes import qr  # noqa: E402

RENEWAL_BYTES_TARGET = 1024
RENEWAL_CPU_TARGET = 0.5  # a renewal now / the former one (which drew the SVG too)
RENDER_TARGET = 0.8  # our server render's rate / zxing-cpp writer's rate, SVG and PNG alike


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cpu_rate(work: Callable[[str], Any], tokens: list[str], rounds: int, batch: int) -> float:
    """Calls a CPU second: the cheapest of ``rounds`` batches of ``batch`` calls."""
    work(tokens[0])  # warm up
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for i in range(batch):
            work(tokens[i % len(tokens)])
        best = min(best, time.process_time() - start)
    return batch / max(best, 1e-9)


# --- the renderers compared ------------------------------------------------------------------------


def former_svg(token: str) -> str:
    """render_svg as it was: qrcode's automatic mask (eight trial symbols, each scored)."""
    fixed = qr.MASK_PATTERN
    qr.MASK_PATTERN = None  # type: ignore[assignment]
    try:
        return qr.render_svg(token)
    finally:
        qr.MASK_PATTERN = fixed


def former_png(token: str) -> bytes:
    """render_png as it was: automatic mask, qrcode's PIL image drawn module by module."""
    symbol = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=6, border=qr.BORDER)
    symbol.add_data(token)
    symbol.make(fit=True)
    buffer = io.BytesIO()
    symbol.make_image(fill_color="black", back_color="white").save(buffer, format="PNG")
    return buffer.getvalue()


def zxing_symbol(token: str) -> Any:
    return zxingcpp.create_barcode(token, zxingcpp.BarcodeFormat.QRCode, ec_level="M")


def zxing_svg(token: str) -> str:
    svg: str = zxing_symbol(token).to_svg(add_quiet_zones=True)
    return svg


def zxing_png(token: str) -> bytes:
    pixels = memoryview(zxing_symbol(token).to_image(scale=6, add_quiet_zones=True))
    height, width = pixels.shape or (0, 0)
    image = Image.frombytes("L", (width, height), pixels.tobytes())
    buffer = io.BytesIO()  # one bit a pixel, as ours: the same kind of PNG, a quarter of the bytes
    image.convert("1", dither=Image.Dither.NONE).save(buffer, format="PNG")
    return buffer.getvalue()


# --- the phone page's renewal ----------------------------------------------------------------------


def renewals(args: argparse.Namespace, figures: dict[str, Any]) -> list[str]:
    """Real credit codes from the page's own renewal endpoint; its bytes and CPU per renewal."""
    from tests.databases import ScratchDatabase
    from tests.integration.citizen_support import citizen_app, post, sign_in

    with tempfile.TemporaryDirectory(prefix="bench-qr-") as folder:
        tmp = Path(folder)
        db = ScratchDatabase("sqlite", tmp)
        try:
            with citizen_app(db, tmp) as city:
                alice = city.seed().alice
                client = city.client()
                sign_in(client, alice.number)
                given = post(client, "/me/consent", token_from="/me/consent", action="give")
                assert given.status_code == 302, given.status_code
                headers = {"Accept-Encoding": "gzip, deflate, br", "Accept": "application/json"}
                sizes: list[int] = []
                tokens: list[str] = []

                def renew(_token: str = "") -> str:
                    answer = client.get("/me/code.json", headers=headers)
                    assert answer.status_code == 200, answer.status_code
                    sizes.append(len(answer.data))
                    token: str = json.loads(answer.data)["token"]
                    return token

                for _ in range(max(20, args.batch)):
                    tokens.append(renew())
                city.sent.clear()  # the test support keeps every response: not measured here
                now = cpu_rate(renew, tokens, args.rounds, args.batch)
                city.sent.clear()
                page = client.get("/me/code", headers=headers)
                vendored = client.get("/static/vendor/qrcode-generator.min.js", headers=headers)
                vendored_bytes = len(vendored.data)
                vendored.close()
        finally:
            db.drop()
    svg_before = cpu_rate(former_svg, tokens, args.rounds, max(4, args.batch // 5))
    former_body = json.dumps(
        {
            "svg": qr.render_svg(tokens[0]),
            "expires_at": "2026-12-07T00:00:00+00:00",
            "expires_in": 120,
        }
    ).encode()
    figures["renewal"] = {
        "bytes_now_max": max(sizes),
        "bytes_now_min": min(sizes),
        "bytes_before_svg_json": len(former_body),
        "token_chars": sorted({len(t) for t in tokens}),
        "per_cpu_second_now": now,
        "per_cpu_second_before_estimate": 1 / (1 / now + 1 / svg_before),
        "former_svg_render_per_second": svg_before,
        "code_page_bytes_on_the_wire": len(page.data),
        "vendored_library_bytes": vendored_bytes,
    }
    log(
        f"renewal: {max(sizes)} B now (was {len(former_body)} B of SVG JSON); "
        f"{now:,.0f}/CPU s now, {figures['renewal']['per_cpu_second_before_estimate']:,.0f}/CPU s "
        f"with the former SVG render ({svg_before:,.0f}/s)"
    )
    return tokens


def renders(
    tokens: list[str], args: argparse.Namespace, figures: dict[str, Any]
) -> dict[str, float]:
    rates: dict[str, float] = {}
    for name, work in (
        ("ours_svg", qr.render_svg),
        ("ours_png", qr.render_png),
        ("zxing_svg", zxing_svg),
        ("zxing_png", zxing_png),
        ("ours_symbol", qr.matrix),
        ("zxing_symbol", zxing_symbol),
        ("former_svg", former_svg),
        ("former_png", former_png),
    ):
        batch = args.batch if not name.startswith("former") else max(4, args.batch // 5)
        rates[name] = cpu_rate(work, tokens, args.rounds, batch)
        log(f"{name}: {rates[name]:,.1f}/CPU s")
    token = tokens[0]
    figures["render"] = {
        "per_cpu_second": rates,
        "bytes": {
            "ours_svg": len(qr.render_svg(token).encode()),
            "ours_png": len(qr.render_png(token)),
            "zxing_svg": len(zxing_svg(token).encode()),
            "zxing_png": len(zxing_png(token)),
        },
        "qr_version": qr.qr_version(token),
        "mask_pattern": qr.MASK_PATTERN,
    }
    # Each reads back as the token (the benchmark measures nothing broken).
    for name, png in (("ours", qr.render_png(token)), ("zxing", zxing_png(token))):
        found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
        assert [b.text for b in found] == [token], name
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures: dict[str, Any] = {"zxingcpp": zxingcpp.__name__, "qrcode": qrcode.__name__}
    tokens = renewals(args, figures)
    rates = renders(tokens, args, figures)
    renewal = figures["renewal"]
    targets = [
        Ratio("renewal_bytes", renewal["bytes_now_max"], "<=", RENEWAL_BYTES_TARGET),
        Ratio(
            "renewal_cpu_now_over_before",
            renewal["per_cpu_second_before_estimate"] / renewal["per_cpu_second_now"],
            "<=",
            RENEWAL_CPU_TARGET,
        ),
        Ratio(
            "server_svg_over_zxing_writer",
            rates["ours_svg"] / rates["zxing_svg"],
            ">=",
            RENDER_TARGET,
        ),
        Ratio(
            "server_png_over_zxing_writer",
            rates["ours_png"] / rates["zxing_png"],
            ">=",
            RENDER_TARGET,
        ),
    ]
    figures["ratios"] = {t.name: t.value for t in targets}
    figures["informative"] = {
        "server_svg_now_over_former": rates["ours_svg"] / rates["former_svg"],
        "server_png_now_over_former": rates["ours_png"] / rates["former_png"],
        "former_svg_over_zxing_writer": rates["former_svg"] / rates["zxing_svg"],
        # The symbol alone (qrcode in Python against zxing-cpp in C++), no image: where the rest is.
        "server_symbol_over_zxing_symbol": rates["ours_symbol"] / rates["zxing_symbol"],
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    print(json.dumps(figures, indent=2))
    for name, value in figures["informative"].items():
        print(f"INFO {name} {value:.3f}")
    for target in targets:
        print(target.line())


if __name__ == "__main__":
    main()
