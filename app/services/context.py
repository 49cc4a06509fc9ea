"""What every service call needs: the session, the actor and a few settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.gateways.base import Gateway
from app.services.access import Actor
from app.services.netguard import Resolver, resolver_from, system_resolve


@dataclass(frozen=True)
class Settings:
    """The subset of configuration that business rules depend on."""

    allow_private_callbacks: bool = False
    login_max_failures: int = 5
    login_window_seconds: int = 900
    upload_dir: Path = Path("instance/uploads")  # outside the web root
    base_url: str = "http://127.0.0.1:5000"  # for links in notifications
    notify_channels: tuple[str, ...] = ("email",)  # those configured on this installation
    alarm_channel: str | None = None  # a Slack channel that receives every alarm event
    callback_resolver: Resolver = system_resolve  # tests inject their own (no outside DNS)
    template_param_max_length: int = 35  # characters per template parameter (SPEC.md §3)
    message_retention_days: int = 60  # messages older than this are purged (jobs/retention.py)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Settings:
        return cls(
            allow_private_callbacks=bool(config.get("ALLOW_PRIVATE_CALLBACKS")),
            login_max_failures=int(config.get("LOGIN_MAX_FAILURES", 5)),
            login_window_seconds=int(config.get("LOGIN_WINDOW_SECONDS", 900)),
            upload_dir=Path(config["INSTANCE_DIR"]) / "uploads",
            base_url=config.get("BASE_URL") or f"http://{config['HOST']}:{config['PORT']}",
            notify_channels=("email", "sms", "slack") if config.get("SLACK_BOT_TOKEN")
            else ("email", "sms"),
            alarm_channel=(config.get("SLACK_ALARM_CHANNEL") or None)
            if config.get("SLACK_BOT_TOKEN") else None,
            callback_resolver=resolver_from(config),
            template_param_max_length=int(config.get("TEMPLATE_PARAM_MAX_LENGTH", 35)),
            message_retention_days=int(config.get("MESSAGE_RETENTION_DAYS", 60)),
        )


@dataclass(frozen=True)
class Ctx:
    """One interaction. Jobs to start after the commit collect in `deferred`;
    the edge that commits enqueues them (DESIGN.md: enqueue only after commit)."""

    db: Session
    actor: Actor
    settings: Settings = Settings()
    gateway: Gateway | None = None
    deferred: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def defer(self, job: str, *args: Any) -> None:
        self.deferred.append((job, args))
