"""Webhook signing secrets: made, shown once, kept encrypted, rotated with an overlap.

A secret is Standard Webhooks' ``whsec_`` + base64 of 32 random bytes. The city must sign with it,
so it cannot be stored as a hash like a client secret: it is sealed with AES-GCM under a key derived
(HKDF) from the signing-key secret, with the subscription's public id as associated data (a sealed
secret copied to another row does not open).
"""

from __future__ import annotations

import base64
import os
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _key(key_secret: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"citycredit webhook secret v1"
    ).derive(key_secret)


def seal(secret: str, *, key_secret: bytes, subscription: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(_key(key_secret)).encrypt(nonce, secret.encode(), subscription.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def unseal(sealed: str, *, key_secret: bytes, subscription: str) -> str:
    raw = base64.urlsafe_b64decode(sealed)
    return AESGCM(_key(key_secret)).decrypt(raw[:12], raw[12:], subscription.encode()).decode()
