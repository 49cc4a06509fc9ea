"""Secrets encrypted at rest (Fernet), with the key kept outside the database.

The key is SMSOPS_ENCRYPTION_KEY, or else one generated once into
instance/encryption_key (0600). Keys that encrypted older rows go in
SMSOPS_ENCRYPTION_OLD_KEYS (or on the key file's later lines): they still
decrypt, and `smsops secrets rotate` re-encrypts every row with the first key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Engine, String, text
from sqlalchemy.types import TypeDecorator

from app.config import ROOT, write_once

KEY_FILE = "encryption_key"
# A Fernet token is base64 of a 0x80 version byte and a big-endian timestamp whose
# high bytes are zero, so it always starts like this; a hex AppKey never has a "g".
TOKEN_PREFIX = "gAAAAA"  # noqa: S105 - a format marker, not a secret


class EncryptionKeyError(RuntimeError):
    """The configured key cannot read what is stored, or is not a key at all."""


WRONG_KEY = ("Stored secrets cannot be decrypted with the configured encryption key "
             "(SMSOPS_ENCRYPTION_KEY, else instance/encryption_key). Restore the key they were "
             "encrypted with from your backup, or list it in SMSOPS_ENCRYPTION_OLD_KEYS.")


def _keys(value: Any) -> list[str]:
    """One key, a comma- or space-separated list, or a JSON list (Flask parses JSON)."""
    if not value:
        return []
    if isinstance(value, str) and value.strip().startswith("["):
        value = json.loads(value)
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    return [str(k).strip() for k in value if str(k).strip()]


class Keyring:
    def __init__(self, keys: list[str], source: str) -> None:
        if not keys:
            raise EncryptionKeyError(f"No encryption key in {source}.")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except ValueError:
            raise EncryptionKeyError(
                f"The encryption key in {source} is not a Fernet key (32 url-safe base64 "
                "bytes); make one with `smsops secrets new-key`.") from None
        self.source = source

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise EncryptionKeyError(WRONG_KEY) from None

    def rotate(self, token: str) -> str:
        """The same secret, encrypted with the first key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise EncryptionKeyError(WRONG_KEY) from None


def load(config: dict[str, Any]) -> Keyring:
    """The keys from settings, else from instance/encryption_key (made once)."""
    old = _keys(config.get("ENCRYPTION_OLD_KEYS"))
    given = _keys(config.get("ENCRYPTION_KEY"))
    if given:
        return Keyring(given + old, "SMSOPS_ENCRYPTION_KEY")
    path = Path(config.get("INSTANCE_DIR") or ROOT / "instance") / KEY_FILE
    text = write_once(path, lambda: Fernet.generate_key().decode() + "\n")
    return Keyring(_keys(text) + old, str(path))


_current: Keyring | None = None


def configure(config: dict[str, Any]) -> Keyring:
    global _current
    _current = load(config)
    return _current


def keyring() -> Keyring:
    """The app's keys; outside an app (migrations run by hand, tests) the same
    settings read from the environment."""
    if _current is None:
        return configure({"ENCRYPTION_KEY": os.environ.get("SMSOPS_ENCRYPTION_KEY"),
                          "ENCRYPTION_OLD_KEYS": os.environ.get("SMSOPS_ENCRYPTION_OLD_KEYS"),
                          "INSTANCE_DIR": os.environ.get("SMSOPS_INSTANCE_DIR")})
    return _current


def is_encrypted(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX)


class EncryptedText(TypeDecorator[str]):
    """Plain text in Python, a Fernet token in the database."""

    impl = String(255)  # a 64-character AppKey makes a 184-character token
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else keyring().encrypt(value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else keyring().decrypt(value)


def reencrypt_all(engine: Engine) -> int:
    """Encrypt every stored secret again with the first key (after a rotation);
    returns how many rows were rewritten. One transaction: all or nothing."""
    keys = keyring()
    done = 0
    with engine.begin() as conn:
        for table, column in SECRET_COLUMNS:
            rows = conn.execute(text(f"SELECT id, {column} FROM {table}")).all()  # noqa: S608
            for row_id, token in rows:
                conn.execute(text(f"UPDATE {table} SET {column} = :key WHERE id = :id"),  # noqa: S608
                             {"id": row_id, "key": keys.rotate(token)})
            done += len(rows)
    return done


# Every encrypted column (constants, never user input).
SECRET_COLUMNS = (("application", "app_key"), ("api_key", "secret_key"))
