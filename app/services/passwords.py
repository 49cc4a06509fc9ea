"""Password hashing (argon2id) and the rules a new password must meet."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.services.errors import invalid

MIN_LENGTH = 10
_hasher = PasswordHasher()
# Verified against when the email is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher.hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def hash_secret(secret: str) -> str:
    """A short one-time secret (a confirmation code), kept only as a hash."""
    return _hasher.hash(secret)


def check_strength(password: str, field: str = "password") -> None:
    if len(password) < MIN_LENGTH:
        raise invalid(field, f"Use at least {MIN_LENGTH} characters.")
    if len(password) > 256:
        raise invalid(field, "Use at most 256 characters.")


def generate() -> str:
    return secrets.token_urlsafe(12)
