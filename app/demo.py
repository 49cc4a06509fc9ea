"""Demo content for `smsops demo`: idempotent, so it can run any number of times."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.models import Application, Qualification, Signature, Template
from app.services import app_config, apps, content, reviews
from app.services.context import Ctx
from app.sms import templating

DEMO_APP = "Demo shop"
DEMO_ENTITY = "Demo Shop Trading Co., Ltd."
DEMO_SIGNATURE = "DemoShop"
DEMO_TEMPLATES = {
    "mainland": [
        ("Login code", "verification", "您的验证码为{1}，{2}分钟内有效，请勿泄露。"),
        ("Order shipped", "notification", "您的订单{1}已发货，快递单号{2}。"),
        ("Spring sale", "marketing", "春季大促，全场八折，仅限今日。回T退订"),
    ],
    "international": [
        ("Login code", "verification", "Your verification code is {1}. It expires in {2} "
                                       "minutes."),
        ("Order shipped", "notification", "Your order {1} has shipped. Track it at {2}"),
        ("Spring sale", "marketing", "Spring sale: 20% off everything today. Reply STOP to "
                                     "opt out"),
    ],
}


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
    notes.extend(_seed_content(ctx))
    sigs = ctx.db.scalars(select(Signature).where(
        Signature.account_id == ctx.actor.account_id, Signature.content == DEMO_SIGNATURE)
        .order_by(Signature.id)).all()
    names = [name for region in DEMO_TEMPLATES.values() for name, _t, _c in region]
    temps = ctx.db.scalars(select(Template).where(
        Template.account_id == ctx.actor.account_id, Template.name.in_(names))
        .order_by(Template.id)).all()
    return {
        "app_id": app.sdk_app_id, "app_key": app.app_key, "app_name": app.name,
        "signatures": [{"id": s.id, "region": s.region, "content": s.content,
                        "status": s.status} for s in sigs],
        "templates": [{"id": t.id, "region": t.region, "name": t.name, "sms_type": t.sms_type,
                       "content": t.content, "variables": len(templating.variables(t.content)),
                       "status": t.status} for t in temps],
        "notes": notes,
    }


def _seed_content(ctx: Ctx) -> list[str]:
    """An approved qualification, effective signatures and templates of every type."""
    exists = ctx.db.scalar(select(Qualification.id).where(
        Qualification.account_id == ctx.actor.account_id,
        Qualification.enterprise_name == DEMO_ENTITY))
    if exists is not None:
        return ["the demo content already existed"]
    q = content.create_qualification(ctx, {
        "use": "self", "enterprise_name": DEMO_ENTITY, "licence_number": "91310000DEMO00001X",
        "legal_rep_name": "Demo Legal", "legal_rep_id_number": "310101199001010000",
        "admin_name": "Demo Admin", "admin_phone": "13800000000"})
    reviews.approve(ctx, "qualification", q.id, revision=q.revision)
    for region in ("mainland", "international"):
        sig = content.create_signature(ctx, region, {
            "purpose": "self", "qualification_id": q.id, "sign_type": "company",
            "content": DEMO_SIGNATURE})
        reviews.approve(ctx, "signature", sig.id, revision=sig.revision)
        for name, sms_type, text in DEMO_TEMPLATES[region]:
            # "Track it at {2}" takes a tracking link: the template opts in to URLs.
            t = content.create_template(ctx, region, {"name": name, "sms_type": sms_type,
                                                      "content": text,
                                                      "allow_url_params": "Track it at" in text})
            reviews.approve(ctx, "template", t.id, revision=t.revision)
    return ["created an approved qualification, effective signatures and effective "
            "templates of every SMS type"]
