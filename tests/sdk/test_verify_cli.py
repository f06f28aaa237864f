"""`citycredit-verify --image` with an image it cannot use: one line saying why, exit status 3."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from citycredit_partner.cli import main


def unusable_image(kind: str, tmp: Path) -> Path:
    """A path a venue's clerk might give by mistake."""
    blank = tmp / "blank.png"
    Image.new("RGB", (60, 60), "white").save(blank)
    if kind == "missing":
        return tmp / "missing.png"
    if kind == "directory":
        return tmp
    if kind == "not-an-image":
        (tmp / "notes.png").write_text("not a picture", encoding="utf-8")
        return tmp / "notes.png"
    if kind == "truncated":
        (tmp / "cut.png").write_bytes(blank.read_bytes()[:70])
        return tmp / "cut.png"
    return blank  # a picture without a QR code


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("missing", "missing.png: no such file"),
        ("directory", "a directory, not an image"),
        ("not-an-image", "notes.png: not an image this tool can read"),
        ("truncated", "cut.png: the image cannot be read (image file is truncated)"),
        ("no-qr-code", "no QR code found in"),
    ],
)
def test_an_unusable_image_is_one_line_and_exit_status_3(
    kind: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["--image", str(unusable_image(kind, tmp_path)), "--offline"])
    out, err = capsys.readouterr()
    assert status == 3 and out == ""
    assert err.count("\n") == 1 and err.startswith("citycredit-verify: ") and says in err
