"""What every service call needs: the session, the actor and a few settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.services.access import Actor


@dataclass(frozen=True)
class Settings:
    """The subset of configuration that business rules depend on."""

    allow_private_callbacks: bool = False
    login_max_failures: int = 5
    login_window_seconds: int = 900

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Settings:
        return cls(
            allow_private_callbacks=bool(config.get("ALLOW_PRIVATE_CALLBACKS")),
            login_max_failures=int(config.get("LOGIN_MAX_FAILURES", 5)),
            login_window_seconds=int(config.get("LOGIN_WINDOW_SECONDS", 900)),
        )


@dataclass(frozen=True)
class Ctx:
    db: Session
    actor: Actor
    settings: Settings = Settings()
