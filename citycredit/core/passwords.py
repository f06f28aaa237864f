"""Password hashes in werkzeug's format (``scrypt:N:r:p$salt$hex``), made and checked with hashlib.

The ground and the domains load no web framework, yet admin accounts and older API clients were
hashed by werkzeug's ``generate_password_hash``: this module reads and writes the same strings, so
every existing hash keeps working and werkzeug itself could still check the ones made here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

# werkzeug's defaults (3.x): scrypt N=2^15, r=8, p=1; a 16-character alphanumeric salt.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SALT_LENGTH = 16
_SALT_CHARS = string.ascii_letters + string.digits
# Parameters read back from a stored hash are trusted (only this code writes them), but bounded so a
# corrupt row cannot ask for gigabytes of memory.
_MAX_SCRYPT_N = 2**20


def hash_password(password: str) -> str:
    """A new scrypt hash of ``password``, as werkzeug's ``generate_password_hash`` writes it."""
    salt = "".join(secrets.choice(_SALT_CHARS) for _ in range(SALT_LENGTH))
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt:{SCRYPT_N}:{SCRYPT_R}:{SCRYPT_P}${salt}${digest}"


def check_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (scrypt or pbkdf2, in werkzeug's format)."""
    try:
        method, salt, expected = stored.split("$", 2)
        kind, *params = method.split(":")
        if kind == "scrypt":
            n, r, p = (int(x) for x in params) if params else (SCRYPT_N, SCRYPT_R, SCRYPT_P)
            if not 1 < n <= _MAX_SCRYPT_N:
                return False
            actual = _scrypt(password, salt, n, r, p)
        elif kind == "pbkdf2":
            name = params[0] if params else "sha256"
            rounds = int(params[1]) if len(params) > 1 else 1_000_000
            actual = hashlib.pbkdf2_hmac(name, password.encode(), salt.encode(), rounds).hex()
        else:
            return False
    except ValueError:  # not a hash this module knows: nothing matches it
        return False
    return hmac.compare_digest(actual, expected)


def is_password_hash(stored: str) -> bool:
    """Whether ``stored`` is in werkzeug's format (not, say, a keyed hash of a random secret)."""
    return stored.startswith(("scrypt:", "pbkdf2:"))


def _scrypt(password: str, salt: str, n: int, r: int, p: int) -> str:
    # werkzeug's memory bound, so the same parameters work here as there.
    digest = hashlib.scrypt(
        password.encode(), salt=salt.encode(), n=n, r=r, p=p, maxmem=132 * n * r * p
    )
    return digest.hex()
