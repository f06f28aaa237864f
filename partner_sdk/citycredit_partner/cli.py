"""``citycredit-verify``: check a credit code given as text or as a photo/screenshot of the QR code.

    citycredit-verify --image photo.jpg --scenario library-deposit-free
    citycredit-verify --offline eyJhbGciOi...
    citycredit-verify --offline --trust-anchor <fingerprint> eyJhbGciOi...   # a partner city's code

Credentials come from CITYCREDIT_CLIENT_ID / CITYCREDIT_CLIENT_SECRET / CITYCREDIT_BASE_URL or flags;
the federation's anchor fingerprint from CITYCREDIT_TRUST_ANCHOR or --trust-anchor (without it, the
city's discovery document names it).
Exit status: 0 eligible (or valid offline), 1 not eligible, 2 code rejected, 3 other error (an
image that cannot be read or holds no QR code, an unreachable city, …).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx

from ._client import PartnerClient
from ._errors import APIConnectionError, CodeRejectedError, PartnerError
from ._models import OfflineVerification


class ImageError(Exception):
    """The image gives no code: missing, unreadable, not an image, or without a QR code."""


def decode_image(path: Path) -> str:
    """The text of the first QR code in an image (zxing-cpp reads photos and screenshots alike)."""
    try:
        # Lazy: the image readers are the optional [scan] extra; a desk without it still verifies.
        import zxingcpp
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ImageError(
            "reading images needs the scan extra: pip install 'citycredit-partner[scan]'"
        ) from None
    try:
        with Image.open(path) as image:
            results = zxingcpp.read_barcodes(
                image.convert("RGB"),
                formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode),
            )
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: a directory, not an image") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image this tool can read (PNG, JPEG, …)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # A truncated or damaged file: PIL raises these while decoding.
        reason = getattr(exc, "strerror", None) or exc
        raise ImageError(f"{path}: the image cannot be read ({reason})") from None
    if not results:
        raise ImageError(f"no QR code found in {path}")
    return str(results[0].text)


def describe_offline(result: OfflineVerification) -> str:
    """One line for the desk: which city issued the code, its tier, until when it is valid."""
    names = " / ".join(n for n in (result.issuer_name_zh, result.issuer_name_en) if n)
    city = f"{names} ({result.issuer})" if names and names != result.issuer else result.issuer
    if result.visitor:
        # A partner city's code: its common level only, never its local tier.
        tier = f"common tier level {result.tier_level}"
        return (
            f"valid code of {city}, visitor 外地访客: {tier}, "
            f"expires {result.expires_at:%H:%M:%S} UTC"
        )
    return (
        f"valid code of {city}: tier level {result.tier_level} ({result.local_tier}), "
        f"expires {result.expires_at:%H:%M:%S} UTC"
    )


def main(argv: list[str] | None = None, *, transport: httpx.BaseTransport | None = None) -> int:
    """The command; ``transport`` lets a test run it against a mock city."""
    parser = argparse.ArgumentParser(prog="citycredit-verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("token", nargs="?", help="the scanned text of the code")
    parser.add_argument("--image", type=Path, help="a photo or screenshot of the QR code")
    parser.add_argument("--scenario", help="the benefit to check eligibility for (online)")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="check signature and expiry only (the city's JWKS; a partner city's code: the trust list)",
    )
    parser.add_argument(
        "--trust-anchor",
        default=os.environ.get("CITYCREDIT_TRUST_ANCHOR") or None,
        help="the federation's trust anchor fingerprint, pinned (else read from the city)",
    )
    parser.add_argument(
        "--base-url",
        default=os.environ.get("CITYCREDIT_BASE_URL") or "http://127.0.0.1:5000",
        help="the city's address (default: $CITYCREDIT_BASE_URL, else http://127.0.0.1:5000)",
    )
    parser.add_argument("--client-id", default=os.environ.get("CITYCREDIT_CLIENT_ID"))
    parser.add_argument("--client-secret", default=os.environ.get("CITYCREDIT_CLIENT_SECRET"))
    args = parser.parse_args(argv)
    if bool(args.token) == bool(args.image):
        parser.error("give the code as text or --image, one of the two")
    try:
        token = args.token or decode_image(args.image)
    except ImageError as exc:
        print(f"citycredit-verify: {exc}", file=sys.stderr)
        return 3
    if not args.offline and not args.scenario:
        parser.error("--scenario is needed online (or use --offline)")
    if not args.offline and not (args.client_id and args.client_secret):
        parser.error(
            "online checks need --client-id and --client-secret (or the environment variables)"
        )
    client = PartnerClient(
        args.client_id or "",
        args.client_secret or "",
        args.base_url,
        trust_anchor=args.trust_anchor,
        transport=transport,
    )
    try:
        if args.offline:
            print(describe_offline(client.verify_offline(token)))
            return 0
        verification = client.verify(token, args.scenario)
        verdict = "ELIGIBLE 符合" if verification.eligible else "NOT ELIGIBLE 不符合"
        print(f"{verdict}: {verification.benefit.zh} / {verification.benefit.en}")
        if verification.visitor and verification.issuer is not None:
            issuer = verification.issuer
            names = " / ".join(n for n in (issuer.name_zh, issuer.name_en) if n)
            print(f"visitor 外地访客 from {names} ({issuer.code})")
        print(
            f"tier 等级: {verification.tier.name_zh} / {verification.tier.name_en} (level {verification.tier.level})"
        )
        print(f"verification {verification.id}")
        return 0 if verification.eligible else 1
    except CodeRejectedError as exc:
        print(f"REJECTED 拒绝: {exc.reason}: {exc.detail}", file=sys.stderr)
        return 2
    except APIConnectionError:
        print(
            f"error: cannot reach the city at {args.base_url.rstrip('/')} — is it running? "
            "Set CITYCREDIT_BASE_URL (or --base-url) to its address.",
            file=sys.stderr,
        )
        return 3
    except PartnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
