"""``citycredit-verify``: check a credit code given as text or as a photo/screenshot of the QR code.

    citycredit-verify --image photo.jpg --scenario library-deposit-free
    citycredit-verify --offline eyJhbGciOi...

Credentials come from CITYCREDIT_CLIENT_ID / CITYCREDIT_CLIENT_SECRET / CITYCREDIT_BASE_URL or flags.
Exit status: 0 eligible (or valid offline), 1 not eligible, 2 code rejected, 3 other error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ._client import PartnerClient
from ._errors import CodeRejectedError, PartnerError


def decode_image(path: Path) -> str:
    """The text of the first QR code in an image (zxing-cpp reads photos and screenshots alike)."""
    try:
        # Lazy: the image readers are the optional [scan] extra; a desk without it still verifies.
        import zxingcpp
        from PIL import Image
    except ImportError:
        raise SystemExit(
            "reading images needs the scan extra: pip install 'citycredit-partner[scan]'"
        ) from None
    with Image.open(path) as image:
        results = zxingcpp.read_barcodes(
            image.convert("RGB"), formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
        )
    if not results:
        raise SystemExit(f"no QR code found in {path}")
    return str(results[0].text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="citycredit-verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("token", nargs="?", help="the scanned text of the code")
    parser.add_argument("--image", type=Path, help="a photo or screenshot of the QR code")
    parser.add_argument("--scenario", help="the benefit to check eligibility for (online)")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="check signature and expiry only, against the cached JWKS",
    )
    parser.add_argument(
        "--base-url", default=os.environ.get("CITYCREDIT_BASE_URL", "http://127.0.0.1:5000")
    )
    parser.add_argument("--client-id", default=os.environ.get("CITYCREDIT_CLIENT_ID"))
    parser.add_argument("--client-secret", default=os.environ.get("CITYCREDIT_CLIENT_SECRET"))
    args = parser.parse_args(argv)
    if bool(args.token) == bool(args.image):
        parser.error("give the code as text or --image, one of the two")
    token = args.token or decode_image(args.image)
    if not args.offline and not args.scenario:
        parser.error("--scenario is needed online (or use --offline)")
    if not args.offline and not (args.client_id and args.client_secret):
        parser.error(
            "online checks need --client-id and --client-secret (or the environment variables)"
        )
    client = PartnerClient(args.client_id or "", args.client_secret or "", args.base_url)
    try:
        if args.offline:
            result = client.verify_offline(token)
            print(
                f"valid code of {result.issuer}: tier level {result.tier_level} ({result.local_tier}), "
                f"expires {result.expires_at:%H:%M:%S} UTC"
            )
            return 0
        verification = client.verify(token, args.scenario)
        verdict = "ELIGIBLE 符合" if verification.eligible else "NOT ELIGIBLE 不符合"
        print(f"{verdict}: {verification.benefit.zh} / {verification.benefit.en}")
        print(
            f"tier 等级: {verification.tier.name_zh} / {verification.tier.name_en} (level {verification.tier.level})"
        )
        print(f"verification {verification.id}")
        return 0 if verification.eligible else 1
    except CodeRejectedError as exc:
        print(f"REJECTED 拒绝: {exc.reason}: {exc.detail}", file=sys.stderr)
        return 2
    except PartnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
