"""An application's basic configuration (SPEC.md §1): thresholds, countries,
status callback, frequency limits, frequency allowlist and alarm contacts."""

from __future__ import annotations

import csv
import io
import itertools
import secrets
from datetime import timedelta
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select

from app.db import utcnow
from app.models import (
    Account,
    AlarmContact,
    AllowedCountry,
    Application,
    FrequencyAllowlistEntry,
    User,
)
from app.models.accounts import INDIVIDUAL
from app.models.apps import ALARM_EVENTS
from app.services import audit, netguard, notifications, passwords, values
from app.services.accounts import INDIVIDUAL_FREQ_CAPS
from app.services.apps import get_app
from app.services.context import Ctx
from app.services.errors import Conflict, NotFound, ValidationError, invalid
from app.services.notifications import REVIEW_READ_ACTIONS
from app.services.unique import same_time, taken
from app.services.values import flag, text, whole_number
from app.sms import alarm_texts, numbers

MAINLAND, INTERNATIONAL = "mainland", "international"
MAX_ALLOWLIST = 300  # per application (fixed)
MAX_ALLOWLIST_PER_ADD = 100  # (fixed)
MAX_CONTACTS = 5  # per application (fixed)
MAX_FREQ = 1000  # sanity ceiling for enterprise accounts
SLACK_USER_ID = "UW"  # Slack user ids start with U or W


def _account(ctx: Ctx) -> Account:
    account = ctx.db.get(Account, ctx.actor.account_id)
    assert account is not None
    return account


# --- the application's page, section by section ----------------------------------

# Each section of an application's page: the right to read it, then the rights that change it.
SECTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "info": ("DescribeAppInfo", ("ModifyAppInfo",)),
    "key": ("DescribeAppInfo", ("ModifyAppKey",)),
    "status": ("DescribeAppInfo", ("ModifyAppStatus", "DeleteAppInfo")),
    "thresholds": ("DescribeWarningThreshold", ("ModifyWarningThreshold",)),
    "countries": ("DescribeCountryConfig", ("ModifyCountryConfig",)),
    "callback": ("DescribeCallbackInfo", ("ModifyCallbackInfo",)),
    "frequency": ("DescribeFreqRule", ("ModifyFreqRule",)),
    "allowlist": ("DescribeFrequencyWhitelist",
                  ("AddFrequencyWhiteList", "DeleteFrequencyWhiteList")),
    "contacts": ("DescribeNewsReceiver",
                 ("AddNewsReceiver", "ModifyNewsReceiver", "DeleteNewsReceiver")),
}


def readable_sections(ctx: Ctx, sdk_app_id: str) -> frozenset[str]:
    """The sections of the application's page whose settings the actor may see; the
    others say so (opening the page is not a right to read every setting on it)."""
    return frozenset(name for name, (read, _changes) in SECTIONS.items()
                     if ctx.actor.can(read, sdk_app_id))


def opens_page(ctx: Ctx, sdk_app_id: str) -> bool:
    """Whether the actor may open the application's page (its basic configuration)."""
    return ctx.actor.can("DescribeAppInfo", sdk_app_id)


def section_app(ctx: Ctx, sdk_app_id: str, section: str) -> Application:
    """The application a section answers a change with: loaded for reading the section
    when the actor may, else for a right to change it (the change just made), so a user
    who may change a section but not read the application gets the section, not a 403."""
    read, changes = SECTIONS[section]
    action = next((a for a in (read, *changes) if ctx.actor.can(a, sdk_app_id)), read)
    return get_app(ctx, sdk_app_id, action)  # which checks the action


# --- thresholds ---------------------------------------------------------------

def set_thresholds(ctx: Ctx, sdk_app_id: str, region: str, *, alarm_threshold: str | int | None,
                   daily_limit: str | int | None) -> Application:
    app = get_app(ctx, sdk_app_id, "ModifyWarningThreshold")
    if region not in (MAINLAND, INTERNATIONAL):
        raise invalid("region", "Choose mainland or international.")
    errors: dict[str, str] = {}
    threshold = whole_number(alarm_threshold, "alarm_threshold", errors)
    limit = whole_number(daily_limit, "daily_limit", errors)
    if threshold is not None and limit is not None and threshold > limit:
        errors["alarm_threshold"] = "The alarm threshold must not exceed the daily limit."
    if region == INTERNATIONAL and limit is not None and "daily_limit" not in errors:
        quota = _account(ctx).intl_daily_quota
        if limit > quota:
            errors["daily_limit"] = (
                f"Above the account's international quota of {quota:,} billed items per day."
            )
        over = [c.iso_code for c in app.countries if c.daily_limit and c.daily_limit > limit]
        if over:
            errors["daily_limit"] = (
                "Lower than the limit of these countries/regions: " + ", ".join(over)
            )
    if errors:
        raise ValidationError(errors)
    prefix = "mainland" if region == MAINLAND else "intl"
    before = {"alarm_threshold": getattr(app, f"{prefix}_alarm_threshold"),
              "daily_limit": getattr(app, f"{prefix}_daily_limit")}
    setattr(app, f"{prefix}_alarm_threshold", threshold)
    setattr(app, f"{prefix}_daily_limit", limit)
    ctx.db.flush()
    audit.record_changes(ctx, f"ModifyWarningThreshold:{region}", "app", sdk_app_id, before,
                         {"alarm_threshold": threshold, "daily_limit": limit})
    return app


# --- allowed countries / regions -----------------------------------------------

def _country_row(app: Application, quota: int, iso: str, threshold: Any, limit: Any,
                 errors: dict[str, str], prefix: str = "") -> tuple[str, int | None, int | None]:
    """One country's settings, checked. A limit may not exceed the application's
    international limit or, when it has none, the account's quota (`quota`)."""
    iso = (iso or "").strip().upper()
    if not numbers.is_country_code(iso):
        errors[prefix + "iso_code"] = f"{iso or '(blank)'} is not an ISO 3166 country code."
    elif iso == numbers.MAINLAND:
        errors[prefix + "iso_code"] = "Mainland China is configured with the mainland thresholds."
    t = whole_number(threshold, prefix + "alarm_threshold", errors)
    lim = whole_number(limit, prefix + "daily_limit", errors)
    app_limit = app.intl_daily_limit
    if lim is not None and app_limit is not None and lim > app_limit:
        errors[prefix + "daily_limit"] = (
            f"Above the application's international limit of {app_limit:,}."
        )
    elif lim is not None and app_limit is None and lim > quota:
        errors[prefix + "daily_limit"] = (
            f"Above the account's international quota of {quota:,} billed items per day."
        )
    if t is not None and lim is not None and t > lim:
        errors[prefix + "alarm_threshold"] = "The alarm threshold must not exceed the limit."
    return iso, t, lim


def _upsert_country(app: Application, iso: str, t: int | None, lim: int | None) -> None:
    for c in app.countries:
        if c.iso_code == iso:
            c.alarm_threshold, c.daily_limit = t, lim
            return
    app.countries.append(AllowedCountry(iso_code=iso, alarm_threshold=t, daily_limit=lim))


def set_country(ctx: Ctx, sdk_app_id: str, *, iso_code: str, alarm_threshold: Any = None,
                daily_limit: Any = None) -> Application:
    app = get_app(ctx, sdk_app_id, "ModifyCountryConfig")
    errors: dict[str, str] = {}
    iso, t, lim = _country_row(app, _account(ctx).intl_daily_quota, iso_code,
                               alarm_threshold, daily_limit, errors)
    if errors:
        raise ValidationError(errors)
    with taken(ctx.db, same_time("country or region")):
        _upsert_country(app, iso, t, lim)
    audit.record(ctx, "ModifyCountryConfig", "app", sdk_app_id, None,
                 {"iso_code": iso, "alarm_threshold": t, "daily_limit": lim})
    return app


def remove_country(ctx: Ctx, sdk_app_id: str, iso_code: str) -> Application:
    app = get_app(ctx, sdk_app_id, "ModifyCountryConfig")
    match = [c for c in app.countries if c.iso_code == iso_code.upper()]
    if not match:
        raise NotFound(f"{iso_code} is not in the allowed list.")
    app.countries.remove(match[0])
    ctx.db.flush()
    audit.record(ctx, "ModifyCountryConfig", "app", sdk_app_id, {"iso_code": iso_code}, None)
    return app


def import_countries(ctx: Ctx, sdk_app_id: str, data: bytes) -> int:
    """CSV lines `ISO[,alarm threshold[,daily limit]]`, optional header.
    All or nothing: any bad line refuses the whole file, naming each line."""
    app = get_app(ctx, sdk_app_id, "ModifyCountryConfig")
    quota = _account(ctx).intl_daily_quota
    if len(data) > 1024 * 1024:
        raise invalid("file", "The file is larger than 1 MB.")
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise invalid("file", "The file is not UTF-8 text.") from None
    problems: list[str] = []
    rows: dict[str, tuple[int | None, int | None]] = {}
    reader = csv.reader(io.StringIO(content, newline=""))  # CR, LF or CRLF line ends
    for n in itertools.count(1):
        try:
            row = next(reader, None)
        except csv.Error as exc:  # a field over the csv module's limit, a stray quote
            raise invalid("file", f"line {n}: not a CSV line the import can read ({exc}).") \
                from None
        if row is None:
            break
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if n == 1 and cells[0].lower() in ("iso", "iso_code", "country", "code"):
            continue
        if len(cells) > 3:
            problems.append(f"line {n}: expected at most 3 columns")
            continue
        cells += [""] * (3 - len(cells))
        errors: dict[str, str] = {}
        iso, t, lim = _country_row(app, quota, cells[0], cells[1], cells[2], errors)
        if errors:
            problems.extend(f"line {n}: {msg}" for msg in errors.values())
        else:
            rows[iso] = (t, lim)
    if problems:
        raise ValidationError({"file": "; ".join(problems[:50])})
    if not rows:
        raise invalid("file", "The file has no country codes.")
    with taken(ctx.db, same_time("countries or regions")):
        for iso, (t, lim) in rows.items():
            _upsert_country(app, iso, t, lim)
    audit.record(ctx, "ModifyCountryConfig", "app", sdk_app_id, None,
                 {"imported": sorted(rows)})
    return len(rows)


# --- status callback -----------------------------------------------------------

def set_callback(ctx: Ctx, sdk_app_id: str, url: str) -> Application:
    app = get_app(ctx, sdk_app_id, "ModifyCallbackInfo")
    errors: dict[str, str] = {}
    url = text(url, "status_callback_url", errors, max_len=2048)  # one line
    if errors:
        raise ValidationError(errors)
    if url:
        problem = netguard.check_callback_url(url, ctx.settings.allow_private_callbacks,
                                              ctx.settings.callback_resolver)
        if problem:
            raise invalid("status_callback_url", problem)
    before = app.status_callback_url
    app.status_callback_url = url or None
    ctx.db.flush()
    if before != app.status_callback_url:
        audit.record(ctx, "ModifyCallbackInfo", "app", sdk_app_id,
                     {"status_callback_url": before}, {"status_callback_url": url or None})
    return app


# --- frequency limits ----------------------------------------------------------

FREQ_RULES = ("30s", "hour", "day")


def freq_snapshot(app: Application) -> dict[str, Any]:
    return {f"{r}_{k}": getattr(app, f"freq_{r}_{k}") for r in FREQ_RULES
            for k in ("enabled", "limit")}


def set_frequency(ctx: Ctx, sdk_app_id: str,
                  rules: dict[str, tuple[bool | str, Any]]) -> Application:
    """rules: {"30s": (enabled, limit), "hour": …, "day": …}; enabled is a bool or
    on/off as a form sends it."""
    app = get_app(ctx, sdk_app_id, "ModifyFreqRule")
    individual = _account(ctx).account_type == INDIVIDUAL
    errors: dict[str, str] = {}
    parsed: dict[str, tuple[bool, int]] = {}
    for rule in FREQ_RULES:
        raw_enabled, raw = rules.get(rule, (False, None))
        enabled = flag(raw_enabled, f"{rule}_enabled", errors)
        limit = whole_number(raw, f"{rule}_limit", errors, required=True)
        if limit is None:
            continue
        cap = INDIVIDUAL_FREQ_CAPS[rule] if individual else MAX_FREQ
        if limit < 1:
            errors[f"{rule}_limit"] = "At least 1."
        elif limit > cap:
            errors[f"{rule}_limit"] = (
                f"Individual accounts may allow at most {cap} here." if individual
                else f"At most {cap}."
            )
        parsed[rule] = (enabled, limit)
    if errors:
        raise ValidationError(errors)
    before = freq_snapshot(app)
    for rule, (enabled, limit) in parsed.items():
        setattr(app, f"freq_{rule}_enabled", enabled)
        setattr(app, f"freq_{rule}_limit", limit)
    ctx.db.flush()
    audit.record_changes(ctx, "ModifyFreqRule", "app", sdk_app_id, before,
                         freq_snapshot(app))
    return app


# --- frequency allowlist ---------------------------------------------------------

def add_allowlist(ctx: Ctx, sdk_app_id: str, lines: str) -> int:
    """One number per line, as everywhere (E.164, or a plain mainland mobile number).
    Nothing is saved if any line is wrong. Returns how many numbers were new."""
    app = get_app(ctx, sdk_app_id, "AddFrequencyWhiteList")
    wanted: list[str] = []
    problems: list[str] = []
    entries = [(n, line.strip()) for n, line in enumerate(lines.splitlines(), start=1)
               if line.strip()]
    if not entries:
        raise invalid("numbers", "Enter at least one number.")
    if len(entries) > MAX_ALLOWLIST_PER_ADD:
        raise invalid("numbers", f"At most {MAX_ALLOWLIST_PER_ADD} numbers per add "
                                 f"({len(entries)} given).")
    for n, line in entries:
        try:
            wanted.append(numbers.parse_any(line))
        except numbers.NumberError as exc:
            problems.append(f"Line {n} ({line[:30]}): {exc}")
    if problems:  # each message is a sentence of its own
        raise ValidationError({"numbers": " ".join(problems)})
    existing = {e.phone_number for e in app.allowlist}
    new = [w for w in dict.fromkeys(wanted) if w not in existing]
    if len(existing) + len(new) > MAX_ALLOWLIST:
        raise invalid("numbers", f"The allowlist holds at most {MAX_ALLOWLIST} numbers; "
                                 f"{len(existing)} are listed and {len(new)} are new.")
    with taken(ctx.db, same_time("numbers")):
        for number in new:
            app.allowlist.append(FrequencyAllowlistEntry(phone_number=number))
    if new:
        audit.record(ctx, "AddFrequencyWhiteList", "app", sdk_app_id, None, {"numbers": new})
    return len(new)


def remove_allowlist(ctx: Ctx, sdk_app_id: str, phone_numbers: list[str]) -> int:
    app = get_app(ctx, sdk_app_id, "DeleteFrequencyWhiteList")
    doomed = [e for e in app.allowlist if e.phone_number in set(phone_numbers)]
    for e in doomed:
        app.allowlist.remove(e)
    ctx.db.flush()
    if doomed:
        audit.record(ctx, "DeleteFrequencyWhiteList", "app", sdk_app_id,
                     {"numbers": [e.phone_number for e in doomed]}, None)
    return len(doomed)


# --- alarm contacts ------------------------------------------------------------

def contact_snapshot(c: AlarmContact) -> dict[str, Any]:
    return {"name": c.name, "mobile": c.mobile, "email": c.email,
            "slack_user_id": c.slack_user_id, "events": list(c.events)}


def _contact_fields(name: str, mobile: str, email: str, slack_user_id: str,
                    events: list[str]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    out: dict[str, Any] = {"name": text(name, "name", errors, max_len=64, required=True)}
    out["mobile"] = None
    if mobile.strip():
        try:
            out["mobile"] = numbers.parse_any(mobile)
        except numbers.NumberError as exc:
            errors["mobile"] = str(exc)
    out["email"] = None
    if email.strip():
        try:
            out["email"] = validate_email(
                email.strip(), check_deliverability=False, globally_deliverable=False
            ).normalized
        except EmailNotValidError as exc:
            errors["email"] = str(exc)
    slack = slack_user_id.strip().upper()
    if slack and not (slack[0] in SLACK_USER_ID and slack[1:].isalnum() and 8 <= len(slack) <= 15):
        errors["slack_user_id"] = "A Slack user id looks like U012AB3CD."
    out["slack_user_id"] = slack or None
    if not (out["mobile"] or out["email"] or out["slack_user_id"]) and "name" not in errors:
        errors[""] = "Give at least one way to reach the contact: mobile, email or Slack."
    unknown = set(events) - set(ALARM_EVENTS)
    if unknown:
        errors["events"] = f"Unknown event {sorted(unknown)[0]}."
    out["events"] = [e for e in ALARM_EVENTS if e in events]
    if errors:
        raise ValidationError(errors)
    return out


def _may_route_review_results(ctx: Ctx, events: list[str]) -> None:
    """Review results are about the account's content: only someone who may read it
    account-wide may send them to a contact (README, Notifications)."""
    if "review" in events and not any(ctx.actor.can(a) for a in REVIEW_READ_ACTIONS.values()):
        raise invalid("events", "Review results cover the whole account's content, which "
                                "your policy does not let you read; leave them off.")


def _saver_id(ctx: Ctx) -> int | None:
    """Who vouches for the contact: the acting user; the server console (`smsops`
    commands, all rights) counts as the account's first root user."""
    if ctx.actor.user_id is not None:
        return ctx.actor.user_id
    if not ctx.actor.is_root:
        return None
    return ctx.db.scalar(select(User.id).where(User.account_id == ctx.actor.account_id,
                                               User.is_root).order_by(User.id).limit(1))


def contacts_app(ctx: Ctx, sdk_app_id: str) -> Application:
    """An application whose alarm contacts (app.contacts) the actor may read."""
    return get_app(ctx, sdk_app_id, "DescribeNewsReceiver")  # which checks the action


def add_contact(ctx: Ctx, sdk_app_id: str, *, name: str, mobile: str = "", email: str = "",
                slack_user_id: str = "", events: list[str]) -> AlarmContact:
    app = get_app(ctx, sdk_app_id, "AddNewsReceiver")
    fields = _contact_fields(name, mobile, email, slack_user_id, events)
    _may_route_review_results(ctx, fields["events"])
    if len(app.contacts) >= MAX_CONTACTS:
        raise Conflict(f"An application has at most {MAX_CONTACTS} alarm contacts.")
    contact = AlarmContact(**fields, saved_by_id=_saver_id(ctx))
    app.contacts.append(contact)
    ctx.db.flush()
    audit.record(ctx, "AddNewsReceiver", "app", sdk_app_id, None, contact_snapshot(contact))
    return contact


def _contact(app: Application, contact_id: int) -> AlarmContact:
    for c in app.contacts:
        if c.id == contact_id:
            return c
    raise NotFound("No such alarm contact.")


def update_contact(ctx: Ctx, sdk_app_id: str, contact_id: int, *, name: str, mobile: str = "",
                   email: str = "", slack_user_id: str = "", events: list[str]) -> AlarmContact:
    app = get_app(ctx, sdk_app_id, "ModifyNewsReceiver")
    contact = _contact(app, contact_id)
    fields = _contact_fields(name, mobile, email, slack_user_id, events)
    _may_route_review_results(ctx, fields["events"])
    before = contact_snapshot(contact)
    if fields["mobile"] != contact.mobile:  # a new number is confirmed afresh
        _clear_code(contact)
        contact.mobile_confirmed_at = None
    for k, v in fields.items():
        setattr(contact, k, v)
    contact.saved_by_id = _saver_id(ctx)
    ctx.db.flush()
    audit.record_changes(ctx, "ModifyNewsReceiver", "app", sdk_app_id, before,
                         contact_snapshot(contact))
    return contact


def delete_contact(ctx: Ctx, sdk_app_id: str, contact_id: int) -> None:
    app = get_app(ctx, sdk_app_id, "DeleteNewsReceiver")
    contact = _contact(app, contact_id)
    audit.record(ctx, "DeleteNewsReceiver", "app", sdk_app_id, contact_snapshot(contact), None)
    app.contacts.remove(contact)
    ctx.db.flush()



# --- confirming a contact's mobile ----------------------------------------------

CONFIRM_MINUTES = 10  # a code is good this long
CONFIRM_MAX_TRIES = 5  # wrong codes before a new code is needed
CONFIRM_RESEND_SECONDS = 60
CONFIRM_SENDS_PER_DAY = 5  # codes texted to one contact in 24 hours


def _clear_code(contact: AlarmContact) -> None:
    contact.confirm_code_hash = None
    contact.confirm_expires_at = None
    contact.confirm_attempts = 0


def send_mobile_code(ctx: Ctx, sdk_app_id: str, contact_id: int) -> AlarmContact:
    """Text a one-time code to the contact's mobile (through the account's gateway,
    by the notification job). Entering it confirms the number for SMS alarms."""
    app = get_app(ctx, sdk_app_id, "ModifyNewsReceiver")
    contact = _contact(app, contact_id)
    if not contact.mobile:
        raise Conflict("This contact has no mobile to confirm.")
    if contact.mobile_confirmed_at is not None:
        raise Conflict("This mobile is already confirmed.")
    now = utcnow()
    if contact.confirm_sent_at and now - contact.confirm_sent_at < timedelta(
            seconds=CONFIRM_RESEND_SECONDS):
        wait = CONFIRM_RESEND_SECONDS - int((now - contact.confirm_sent_at).total_seconds())
        raise Conflict(f"A code was just sent. Wait {wait} s before asking for another.")
    if contact.confirm_window_at is None or now - contact.confirm_window_at > timedelta(days=1):
        contact.confirm_window_at, contact.confirm_sends = now, 0
    if contact.confirm_sends >= CONFIRM_SENDS_PER_DAY:
        raise Conflict(f"{CONFIRM_SENDS_PER_DAY} codes were sent to this mobile today; "
                       "try again tomorrow.")
    code = f"{secrets.randbelow(10 ** 6):06d}"
    contact.confirm_code_hash = passwords.hash_secret(code)
    contact.confirm_expires_at = now + timedelta(minutes=CONFIRM_MINUTES)
    contact.confirm_attempts = 0
    contact.confirm_sent_at = now
    contact.confirm_sends += 1
    ctx.db.flush()
    notifications.notify(ctx, notifications.CONFIRM_EVENT, [("sms", contact.mobile)],
                         f"Confirmation code for alarm contact #{contact.id}",
                         "", sms=alarm_texts.render("confirm", code=code,
                                                    minutes=CONFIRM_MINUTES))
    audit.record(ctx, "ModifyNewsReceiver:send_code", "app", sdk_app_id, None,
                 {"contact_id": contact.id, "mobile": contact.mobile})
    return contact


def confirm_mobile(ctx: Ctx, sdk_app_id: str, contact_id: int, code: str) -> str | None:
    """None when `code` confirms the mobile; else what is wrong. A wrong try is
    counted even though it is an error, so the caller commits in both cases."""
    app = get_app(ctx, sdk_app_id, "ModifyNewsReceiver")
    contact = _contact(app, contact_id)
    code = (code or "").strip()
    if contact.mobile_confirmed_at is not None:
        return None
    if not contact.confirm_code_hash or contact.confirm_expires_at is None:
        return "Send a code to the mobile first."
    if contact.confirm_attempts >= CONFIRM_MAX_TRIES:
        return "Too many wrong codes; send a new code."
    if utcnow() > contact.confirm_expires_at:
        return "The code has expired; send a new code."
    if not (len(code) == 6 and values.digits(code)):
        return "The code is 6 digits."
    if not passwords.verify(contact.confirm_code_hash, code):
        contact.confirm_attempts += 1
        ctx.db.flush()
        left = CONFIRM_MAX_TRIES - contact.confirm_attempts
        return f"Wrong code; {left} tries left." if left else \
            "Wrong code; send a new code."
    _clear_code(contact)
    contact.mobile_confirmed_at = utcnow()
    ctx.db.flush()
    audit.record(ctx, "ModifyNewsReceiver:confirm_mobile", "app", sdk_app_id, None,
                 {"contact_id": contact.id, "mobile": contact.mobile})
    return None


def receives_review_results(ctx: Ctx, contact: AlarmContact) -> bool:
    """For the page: does the contact currently hear about any reviewed content?"""
    return "review" in contact.events and any(
        notifications.may_read(ctx.db, contact, ctx.actor.account_id, a)
        for a in REVIEW_READ_ACTIONS.values())
