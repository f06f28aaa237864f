"""Password hashes in werkzeug's format, made and checked without werkzeug (existing accounts keep working)."""

from __future__ import annotations

import subprocess
import sys

from werkzeug.security import check_password_hash, generate_password_hash

from citycredit.core import passwords


def test_hashes_werkzeug_made_still_verify() -> None:
    for method in ("scrypt", "scrypt:16384:8:1", "pbkdf2:sha256:1000"):
        stored = generate_password_hash("correct horse battery", method=method)
        assert passwords.check_password(stored, "correct horse battery"), method
        assert not passwords.check_password(stored, "correct horse battery "), method


def test_hashes_made_here_are_werkzeugs_format_and_werkzeug_accepts_them() -> None:
    stored = passwords.hash_password("correct horse battery")
    method, salt, digest = stored.split("$")
    assert method == "scrypt:32768:8:1" and len(salt) == 16 and salt.isalnum()
    assert len(digest) == 128
    assert check_password_hash(stored, "correct horse battery")
    assert not check_password_hash(stored, "wrong")
    assert passwords.hash_password("correct horse battery") != stored  # a fresh salt each time


def test_anything_else_matches_nothing() -> None:
    for stored in ("", "plain", "md5$x$y", "scrypt:x:8:1$s$00", "scrypt:1048577:8:1$s$00",
                   "hmac-sha256$" + "0" * 64):  # fmt: skip
        assert not passwords.check_password(stored, "anything"), stored
    assert passwords.is_password_hash("scrypt:32768:8:1$a$b")
    assert not passwords.is_password_hash("hmac-sha256$00")


def test_the_ground_and_the_admin_domain_load_no_werkzeug() -> None:
    # A fresh interpreter: this one has long loaded Flask for other tests.
    script = (
        "import sys, citycredit.core.clients, admin.operations; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'werkzeug', 'flask', 'jinja2'}))"
    )
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"
