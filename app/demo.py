"""Demo content for `smsops demo`: idempotent, so it can run any number of times."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.models import Application
from app.services import app_config, apps
from app.services.context import Ctx

DEMO_APP = "Demo shop"


def seed(ctx: Ctx) -> dict[str, Any]:
    notes: list[str] = []
    app = ctx.db.scalar(
        select(Application).where(Application.account_id == ctx.actor.account_id,
                                  Application.name == DEMO_APP)
    )
    if app is None:
        app, _key = apps.create_app(ctx, name=DEMO_APP, overview="Orders and delivery notices",
                                    tags="demo, shop")
        sid = app.sdk_app_id
        app_config.set_thresholds(ctx, sid, app_config.MAINLAND, alarm_threshold=800,
                                  daily_limit=1000)
        app_config.set_thresholds(ctx, sid, app_config.INTERNATIONAL, alarm_threshold=80,
                                  daily_limit=100)
        app_config.import_countries(ctx, sid, b"US,20,50\nGB,10,30\nSG\n")
        app_config.set_frequency(ctx, sid, {"30s": (True, 1), "hour": (True, 5),
                                            "day": (True, 10)})
        app_config.add_allowlist(ctx, sid, "+8613800000000\n+14155550100")
        app_config.add_contact(ctx, sid, name="On-call", mobile="+8613800000001",
                               email="oncall@example.com",
                               events=["threshold", "frequency", "review", "package"])
        notes.append("created the demo application with thresholds, countries, "
                     "frequency limits, an allowlist and an alarm contact")
    else:
        notes.append("the demo application already existed; nothing changed")
    return {"app_id": app.sdk_app_id, "app_key": app.app_key, "app_name": app.name,
            "notes": notes}
