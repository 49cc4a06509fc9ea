"""Qualifications, signatures and body templates (SPEC.md §2).

Content belongs to the account, not to one application, so its actions are
checked against all applications (`sms:app/*`), as the hosted console does for
actions without resource-level authorization.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from app.db import utcnow
from app.models import Account, Qualification, Signature, Template, UnsubscribeRemoval
from app.models.accounts import INDIVIDUAL
from app.models.content import APPROVED, EDITABLE, EFFECTIVE, PENDING
from app.services import audit, values
from app.services.context import Ctx
from app.services.errors import Conflict, NotFound, ValidationError, invalid
from app.services.uploads import (
    CheckedImage,
    Upload,
    check_image,
    delete_on_commit,
    store_on_commit,
)
from app.services.values import flag, text
from app.sms import numbers, templating
from app.sms.text import MAINLAND, REGIONS, Segments, count

USES = {"self": "Self-use (the account's own entity)", "third_party": "Third-party use"}
PURPOSES = {"self": "Self-use", "other": "Other-use (authorized by its owner)"}
SIGN_TYPES = {
    "company": "Company", "app": "App", "website": "Website",
    "official_account": "Official account / mini program", "trademark": "Trademark",
    "government": "Government / institution / other",
}
INDIVIDUAL_SIGN_TYPES = ("app", "website", "official_account")
BRACKETS = frozenset("[]【】()（）{}<>《》〔〕［］〈〉")  # noqa: RUF001 - full-width on purpose

QUALIFICATION_FIELDS = ("use", "enterprise_name", "licence_number", "legal_rep_name",
                        "legal_rep_id_number", "admin_name", "admin_phone")
# What may change once a qualification is approved (SPEC.md §2).
QUALIFICATION_APPROVED_FIELDS = ("licence_number", "legal_rep_name", "legal_rep_id_number",
                                 "admin_name", "admin_phone")
SIGNATURE_FIELDS = ("region", "purpose", "qualification_id", "sign_type", "content", "notes",
                    "proof_image", "authorization_image")
TEMPLATE_FIELDS = ("region", "name", "sms_type", "content", "notes", "allow_url_params")
FIELDS: dict[type, tuple[str, ...]] = {
    Qualification: QUALIFICATION_FIELDS, Signature: SIGNATURE_FIELDS, Template: TEMPLATE_FIELDS,
    UnsubscribeRemoval: ("phone_number", "signature_id", "sms_type", "reason"),
}


Content = Qualification | Signature | Template | UnsubscribeRemoval


def snapshot(obj: Content) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in FIELDS[type(obj)]}


def _individual(ctx: Ctx) -> bool:
    account = ctx.db.get(Account, ctx.actor.account_id)
    return account is not None and account.account_type == INDIVIDUAL


KIND_OF: dict[type, str] = {Qualification: "qualification", Signature: "signature",
                            Template: "template", UnsubscribeRemoval: "unsubscribe_removal"}
SUBMITTED_JOB = "jobs.reviews.submitted"  # tells reviewers, e.g. in Slack


def submit_for_review(ctx: Ctx, obj: Content) -> None:
    """(Re)submit for review: pending again, a new revision, the submitter recorded.
    Reviewers are told once the caller has committed (the object has an id by then)."""
    obj.status = PENDING
    obj.reject_reason = None
    obj.submitted_by_id = ctx.actor.user_id
    obj.submitted_by = ctx.actor.label
    obj.submitted_at = utcnow()
    _flush(ctx, KIND_OF[type(obj)].replace("_", " "))  # bumps the revision
    ctx.defer(SUBMITTED_JOB, KIND_OF[type(obj)], obj.id)


def _flush(ctx: Ctx, label: str) -> None:
    """Write changes to reviewed rows: each UPDATE or DELETE matches only the revision
    that was read, so a change made meanwhile (e.g. a decision) is a conflict."""
    try:
        ctx.db.flush()
    except StaleDataError:
        raise Conflict(f"This {label} changed while you were working on it (it may just "
                       f"have been reviewed). Open it again and redo your change.") from None


def _region(region: str) -> str:
    if region not in REGIONS:
        raise invalid("region", f"“{str(region)[:20]}” is not a region: choose mainland or "
                                "international.")
    return region


valid_region = _region  # for adapters that take a region from a URL


def _load(ctx: Ctx, model: type, obj_id: int, action: str) -> Any:
    ctx.actor.require(action)
    obj = ctx.db.get(model, obj_id)
    if obj is None or obj.account_id != ctx.actor.account_id:
        raise NotFound(f"No such {model.__name__.lower()}.")
    return obj


def _add(ctx: Ctx, obj: Content, action: str) -> None:
    """A new object: stored, submitted for review, audited."""
    ctx.db.add(obj)
    submit_for_review(ctx, obj)  # flushes, so the object has its id
    audit.record(ctx, action, KIND_OF[type(obj)], obj.id, None, snapshot(obj))


def _resubmit(ctx: Ctx, obj: Content, fields: dict[str, Any], action: str, kind: str) -> None:
    """Apply an edit, submit it for review again, and audit what changed."""
    before = snapshot(obj)
    for k, v in fields.items():
        setattr(obj, k, v)
    submit_for_review(ctx, obj)
    ctx.db.flush()
    audit.record_changes(ctx, action, kind, obj.id, before, snapshot(obj))


def _delete(ctx: Ctx, obj: Content, action: str, kind: str) -> None:
    audit.record(ctx, action, kind, obj.id, snapshot(obj), None)
    ctx.db.delete(obj)
    _flush(ctx, kind)


def _editable(obj: Signature | Template) -> None:
    if obj.status not in EDITABLE:
        raise Conflict(f"Only content pending review or rejected can be edited; this is "
                       f"{obj.status_label.lower()}.")


# --- qualifications ----------------------------------------------------------

def list_qualifications(ctx: Ctx) -> list[Qualification]:
    ctx.actor.require("DescribeQualification")
    return list(ctx.db.scalars(select(Qualification).where(
        Qualification.account_id == ctx.actor.account_id).order_by(Qualification.id)))


def get_qualification(ctx: Ctx, qid: int) -> Qualification:
    return _load(ctx, Qualification, qid, "DescribeQualification")


def _qualification_fields(data: dict[str, str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    out = {
        "use": str(data.get("use", "")),
        "enterprise_name": text(data.get("enterprise_name"), "enterprise_name", errors,
                                max_len=200, required=True),
        "licence_number": text(data.get("licence_number"), "licence_number", errors,
                               max_len=64, required=True),
        "legal_rep_name": text(data.get("legal_rep_name"), "legal_rep_name", errors,
                               max_len=64, required=True),
        "legal_rep_id_number": text(data.get("legal_rep_id_number"), "legal_rep_id_number",
                                    errors, max_len=64, required=True),
        "admin_name": text(data.get("admin_name"), "admin_name", errors, max_len=64,
                           required=True),
        "admin_phone": "",
    }
    if out["use"] not in USES:
        errors["use"] = "Choose self-use or third-party use."
    try:
        out["admin_phone"] = numbers.parse_any(data.get("admin_phone", ""))
    except numbers.NumberError as exc:
        errors["admin_phone"] = str(exc)
    if errors:
        raise ValidationError(errors)
    return out


def create_qualification(ctx: Ctx, data: dict[str, str]) -> Qualification:
    ctx.actor.require("AddQualification")
    q = Qualification(account_id=ctx.actor.account_id, **_qualification_fields(data))
    _add(ctx, q, "AddQualification")
    return q


def update_qualification(ctx: Ctx, qid: int, data: dict[str, str]) -> Qualification:
    q = _load(ctx, Qualification, qid, "ModifyQualification")
    # Once approved, the entity and its use are fixed.
    allowed = QUALIFICATION_FIELDS if q.status in EDITABLE else QUALIFICATION_APPROVED_FIELDS
    fields = _qualification_fields({**snapshot(q), **data})
    locked = [f for f in QUALIFICATION_FIELDS if f not in allowed and fields[f] != getattr(q, f)]
    if locked:
        raise ValidationError({f: "An approved qualification cannot change this."
                               for f in locked})
    changed = {f: fields[f] for f in allowed if fields[f] != getattr(q, f)}
    if changed:  # an unchanged save does not send it back to review
        _resubmit(ctx, q, changed, "ModifyQualification", "qualification")
    return q


def deletion_impact(ctx: Ctx, ids: list[int]) -> list[Signature]:
    """The signatures that become unusable if these qualifications go."""
    ctx.actor.require("DescribeQualification")
    return list(ctx.db.scalars(select(Signature).where(
        Signature.account_id == ctx.actor.account_id, Signature.qualification_id.in_(ids)
    ).order_by(Signature.id)))


def delete_qualifications(ctx: Ctx, ids: list[int]) -> list[Signature]:
    """Permanent. Their signatures stay listed but can no longer be used."""
    ctx.actor.require("DeleteQualification")
    if not ids:
        raise invalid("", "Select at least one qualification.")
    qs = [_load(ctx, Qualification, i, "DeleteQualification") for i in dict.fromkeys(ids)]
    affected = deletion_impact(ctx, [q.id for q in qs])
    for s in affected:
        s.orphaned = True
        s.qualification_id = None
    for q in qs:
        audit.record(ctx, "DeleteQualification", "qualification", q.id, snapshot(q), {
            "signatures_made_unusable": [s.id for s in affected if s.id]})
        ctx.db.delete(q)
    _flush(ctx, "qualification or one of its signatures")
    return affected


# --- signatures ----------------------------------------------------------------

def list_signatures(ctx: Ctx, region: str) -> list[Signature]:
    ctx.actor.require("DescribeSmsSignList")
    return list(ctx.db.scalars(select(Signature).where(
        Signature.account_id == ctx.actor.account_id, Signature.region == _region(region)
    ).order_by(Signature.id)))


def get_signature(ctx: Ctx, sid: int) -> Signature:
    return _load(ctx, Signature, sid, "DescribeSmsSignList")


def default_signature(ctx: Ctx, region: str) -> Signature | None:
    """Used when a send names none: the first usable one (SPEC.md §2)."""
    for s in ctx.db.scalars(select(Signature).where(
        Signature.account_id == ctx.actor.account_id, Signature.region == region,
        Signature.status == EFFECTIVE,
    ).order_by(Signature.id)):
        if s.usable:
            return s
    return None


def _signature_fields(ctx: Ctx, region: str, data: dict[str, Any], current: Signature | None,
                      proof: Upload | None, authorization: Upload | None) -> dict[str, Any]:
    errors: dict[str, str] = {}
    content = text(data.get("content"), "content", errors, max_len=100, required=True)
    if content and "content" not in errors:
        if not 2 <= len(content) <= 12:
            errors["content"] = "Use 2 to 12 characters."
        elif any(c in BRACKETS for c in content):
            errors["content"] = "Brackets are added when sending; leave them out."
    purpose = str(data.get("purpose", ""))
    if purpose not in PURPOSES:
        errors["purpose"] = "Choose self-use or other-use."
    sign_type = str(data.get("sign_type", ""))
    allowed_types = INDIVIDUAL_SIGN_TYPES if _individual(ctx) else tuple(SIGN_TYPES)
    if sign_type not in allowed_types:
        errors["sign_type"] = ("Individual accounts may use app, website or official "
                               "account / mini program signatures." if sign_type in SIGN_TYPES
                               else "Choose a signature type.")
    qualification_id = None
    if region == MAINLAND:
        raw = str(data.get("qualification_id") or "")
        qid = values.record_id(raw)
        q = ctx.db.get(Qualification, qid) if qid else None
        if q is None or q.account_id != ctx.actor.account_id:
            errors["qualification_id"] = "Choose the qualification behind this signature."
        elif q.status != APPROVED:
            errors["qualification_id"] = "The qualification must be approved first."
        else:
            qualification_id = q.id
    notes = text(data.get("notes"), "notes", errors, max_len=500, multiline=True)
    images = {"proof_image": current.proof_image if current else None,
              "authorization_image": current.authorization_image if current else None}
    checked: dict[str, CheckedImage] = {}
    for field, upload in (("proof_image", proof), ("authorization_image", authorization)):
        if upload is not None and upload.data:
            try:
                checked[field] = check_image(upload, field)
                images[field] = checked[field].name
            except ValidationError as exc:
                errors.update(exc.errors)
    if sign_type == "trademark" and not images["proof_image"] and "proof_image" not in errors:
        errors["proof_image"] = "A trademark signature needs the trademark certificate image."
    if purpose == "other" and not images["authorization_image"] and (
        "authorization_image" not in errors
    ):
        errors["authorization_image"] = "Other-use needs the signed authorization letter."
    if sign_type != "trademark":
        images["proof_image"] = None
    if purpose != "other":
        images["authorization_image"] = None
    if errors:
        raise ValidationError(errors)
    # Every field is valid: only now are the images written, and only on commit.
    for field, image in checked.items():
        if images[field] == image.name:  # not dropped by the type or purpose
            store_on_commit(ctx.db, ctx.settings.upload_dir, image)
    return {"region": region, "purpose": purpose, "qualification_id": qualification_id,
            "sign_type": sign_type, "content": content, "notes": notes, **images}


def create_signature(ctx: Ctx, region: str, data: dict[str, Any], *,
                     proof: Upload | None = None,
                     authorization: Upload | None = None) -> Signature:
    ctx.actor.require("AddSmsSign")
    fields = _signature_fields(ctx, _region(region), data, None, proof, authorization)
    s = Signature(account_id=ctx.actor.account_id, **fields)
    _add(ctx, s, "AddSmsSign")
    return s


def update_signature(ctx: Ctx, sid: int, data: dict[str, Any], *, proof: Upload | None = None,
                     authorization: Upload | None = None) -> Signature:
    s = _load(ctx, Signature, sid, "ModifySmsSign")
    _editable(s)
    fields = _signature_fields(ctx, s.region, data, s, proof, authorization)
    for name in ("proof_image", "authorization_image"):
        if getattr(s, name) != fields[name]:  # replaced or no longer needed
            delete_on_commit(ctx.db, ctx.settings.upload_dir, getattr(s, name))
    s.orphaned = False  # a new qualification gives it a new chance
    _resubmit(ctx, s, fields, "ModifySmsSign", "signature")
    return s


def delete_signature(ctx: Ctx, sid: int) -> None:
    s = _load(ctx, Signature, sid, "DeleteSmsSign")
    for name in (s.proof_image, s.authorization_image):
        delete_on_commit(ctx.db, ctx.settings.upload_dir, name)
    _delete(ctx, s, "DeleteSmsSign", "signature")


# --- templates -------------------------------------------------------------------

def list_templates(ctx: Ctx, region: str) -> list[Template]:
    ctx.actor.require("DescribeSmsTemplateList")
    return list(ctx.db.scalars(select(Template).where(
        Template.account_id == ctx.actor.account_id, Template.region == _region(region)
    ).order_by(Template.id)))


def get_template(ctx: Ctx, tid: int) -> Template:
    return _load(ctx, Template, tid, "DescribeSmsTemplateList")


def _template_fields(ctx: Ctx, region: str, data: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    name = text(data.get("name"), "name", errors, max_len=64, required=True)
    sms_type = str(data.get("sms_type", ""))
    if sms_type not in templating.SMS_TYPES:
        errors["sms_type"] = "Choose verification code, notification or marketing."
    elif sms_type == templating.MARKETING and _individual(ctx):
        errors["sms_type"] = "Individual accounts cannot send marketing messages."
    content = str(data.get("content") or "").strip()
    problems = templating.problems(content, sms_type)
    if problems:
        errors["content"] = " ".join(problems)
    notes = text(data.get("notes"), "notes", errors, max_len=500, multiline=True)
    # Reviewed with the content: may parameters carry URLs (SPEC.md §3)?
    allow_urls = flag(data.get("allow_url_params"), "allow_url_params", errors)
    if errors:
        raise ValidationError(errors)
    return {"region": region, "name": name, "sms_type": sms_type, "content": content,
            "notes": notes, "allow_url_params": allow_urls}


def create_template(ctx: Ctx, region: str, data: dict[str, Any]) -> Template:
    ctx.actor.require("AddSmsTemplate")
    t = Template(account_id=ctx.actor.account_id, **_template_fields(ctx, _region(region), data))
    _add(ctx, t, "AddSmsTemplate")
    return t


def update_template(ctx: Ctx, tid: int, data: dict[str, Any]) -> Template:
    t = _load(ctx, Template, tid, "ModifySmsTemplate")
    _editable(t)
    _resubmit(ctx, t, _template_fields(ctx, t.region, data), "ModifySmsTemplate", "template")
    return t


def set_carrier_template_id(ctx: Ctx, tid: int, value: str) -> Template:
    """The template's id at a carrier that sends by template. It decides which text
    that carrier sends, so a change sends the template back to review, at any status."""
    t = _load(ctx, Template, tid, "ModifySmsTemplate")
    value = value.strip()
    if value and (len(value) > 32 or not value.replace("-", "").replace("_", "").isalnum()):
        raise invalid("carrier_template_id", "Use the carrier's id: letters and digits.")
    if (value or None) == t.carrier_template_id:
        return t  # unchanged: no new review
    audit.record_changes(ctx, "ModifySmsTemplate", "template", t.id,
                         {"carrier_template_id": t.carrier_template_id, "status": t.status},
                         {"carrier_template_id": value or None, "status": PENDING})
    t.carrier_template_id = value or None
    submit_for_review(ctx, t)
    return t


def delete_template(ctx: Ctx, tid: int) -> None:
    _delete(ctx, _load(ctx, Template, tid, "DeleteSmsTemplate"), "DeleteSmsTemplate", "template")


def preview(ctx: Ctx, region: str, sms_type: str, content: str) -> dict[str, Any]:
    """What the template form shows as you type: variables, rule problems, and the
    encoding and billed items of a sample rendering with the default signature."""
    ctx.actor.require("DescribeSmsTemplateList")
    region = _region(region)
    found = templating.variables(content)
    sign = default_signature(ctx, region)
    sample = templating.render(content, templating.sample_params(max(found, default=0),
                                                                 sms_type)) if content else ""
    counted: Segments = count(sample, region, sign.content if sign else None)
    return {"variables": found, "problems": templating.problems(content, sms_type),
            "length": len(content), "signature": sign.content if sign else None,
            "sample": counted.text, **counted.as_dict()}
