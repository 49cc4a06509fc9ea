"""Housekeeping jobs."""

from __future__ import annotations

import os

from jobs import runtime


def ping(token: str) -> int:
    """Proves a worker is alive and can reach Redis: records its pid under the token."""
    pid = os.getpid()
    runtime.app().extensions["redis"].set(f"smsops:ping:{token}", pid, ex=300)
    return pid
