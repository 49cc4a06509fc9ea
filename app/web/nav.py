"""The console's navigation by area, as data.

Each item names an endpoint, its label, its query arguments and the policy action a
user needs for it. Items whose endpoint is not registered (a page still being built)
or cannot be built without more arguments are skipped, so links appear on their own
once those pages land. Whether a user may see an item is asked of the service layer
(app/services/console.can_reach), never decided in a template."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, request, url_for
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.routing import BuildError

from app.services.console import ANYONE, ROOT, can_reach
from app.web import ctx

log = logging.getLogger("smsops.web")


@dataclass(frozen=True)
class Item:
    endpoint: str
    label: str
    needs: str  # a policy action, ROOT or ANYONE
    args: tuple[tuple[str, str], ...] = ()
    # Other endpoints that are "here" too (detail and form pages); "bp." means a blueprint.
    also: tuple[str, ...] = ()
    badge: str = ""  # "reviews": the live pending-review count
    fragment: str = ""  # a part of another page: linked, never marked as current
    per_app: bool = False  # the page also serves a policy scoped to named applications

    def owns(self, endpoint: str) -> int:
        """3: this item's own page; 2: a page named under it; 1: a page of a blueprint
        under it; 0: not here."""
        if endpoint == self.endpoint:
            return 3
        if endpoint in self.also:
            return 2
        if any(a.endswith(".") and endpoint.startswith(a) for a in self.also):
            return 1
        return 0


@dataclass(frozen=True)
class Area:
    key: str
    label: str
    items: tuple[Item, ...]


MAINLAND, INTERNATIONAL = (("region", "mainland"),), (("region", "international"),)

AREAS: tuple[Area, ...] = (
    Area("overview", "Overview", (
        Item("dashboard.index", "Dashboard", ANYONE),
        Item("dashboard.test_send", "Send a test message", "SendSms", per_app=True),
    )),
    Area("mainland", "Mainland China", (
        Item("content.qualifications", "Qualifications", "DescribeQualification",
             also=("content.qualification_form", "content.qualifications_delete")),
        Item("content.signatures", "Signatures", "DescribeSmsSignList", MAINLAND,
             also=("content.signature_form",)),
        Item("content.templates", "Body templates", "DescribeSmsTemplateList", MAINLAND,
             also=("content.template_form",)),
        Item("tasks.index", "Bulk tasks", "DescribeSendTasks", MAINLAND, also=("tasks.",),
             per_app=True),
    )),
    Area("international", "International", (
        Item("content.signatures", "Signatures", "DescribeSmsSignList", INTERNATIONAL,
             also=("content.signature_form",)),
        Item("content.templates", "Body templates", "DescribeSmsTemplateList", INTERNATIONAL,
             also=("content.template_form",)),
        Item("tasks.index", "Bulk tasks", "DescribeSendTasks", INTERNATIONAL, also=("tasks.",),
             per_app=True),
    )),
    Area("statistics", "Statistics", (
        Item("stats.overview", "Mainland China", "DescribeStatistics", MAINLAND, per_app=True),
        Item("stats.overview", "International", "DescribeStatistics", INTERNATIONAL, per_app=True),
        Item("stats.failures", "Failure analysis", "DescribeStatistics", per_app=True),
        Item("stats.receipts", "Receipt analysis", "DescribeStatistics", per_app=True),
        Item("stats.countries", "Countries/regions", "DescribeStatistics", per_app=True),
        Item("stats.verification", "Captcha volume", "DescribeStatistics", also=("stats.",),
             per_app=True),
        Item("messages.index", "SMS log", "DescribeSendSmsRecord", also=("messages.",),
             per_app=True),
    )),
    Area("marketing", "Marketing", (
        Item("groups.index", "Customers and groups", "DescribeCustomerGroup",
             also=("groups.",)),
    )),
    Area("applications", "Applications", (
        Item("apps.index", "Application list", "DescribeAppList", also=("apps.",),
             per_app=True),
        # These three open on one application and offer the others (apps/_picker.html).
        Item("apps.configuration", "Basic configuration", "DescribeAppInfo", per_app=True),
        Item("apps.contacts_index", "Alarm contacts", "DescribeNewsReceiver",
             also=("apps.contacts",), per_app=True),
        Item("alarms.security_index", "Security", "DescribeAlarms",
             also=("alarms.security", "alarms.security_save"), per_app=True),
        Item("alarms.history", "Alarm history", "DescribeAlarms", also=("alarms.",)),
        Item("content.notification_log", "Notification log", "DescribeAlarms"),
    )),
    Area("general", "General", (
        Item("general.mute_list", "Mute list", "DescribeBlackList", also=("general.mute_delete",)),
        Item("general.unsubscribed", "Unsubscribed users", "DescribeUnsubscribe"),
        Item("general.reply_list", "Replies", "DescribeSendSmsRecord", per_app=True),
        Item("accounts.settings", "Reply callback", "DescribeAccountSettings",
             fragment="reply-callback"),
        Item("general.credit_packages", "Credit packages", "DescribePackageList"),
    )),
    Area("reviews", "Reviews", (
        Item("content.review_queue", "Reviews", "DescribeSmsTemplateList",
             also=("content.review_decide",), badge="reviews"),
    )),
    Area("access", "Access", (
        Item("users.index", "Users", ROOT, also=(
            "users.create", "users.detail", "users.set_policies", "users.set_status",
            "users.reset_password", "users.unlink_slack", "users.delete")),
        Item("users.policy_index", "Policies", ROOT,
             also=("users.policy_new", "users.policy_edit", "users.policy_delete")),
        Item("accounts.audit_log", "Audit log", ROOT),
    )),
    Area("settings", "Settings", (
        Item("accounts.settings", "Settings", "DescribeAccountSettings"),
    )),
)


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    current: bool
    badge: str


@dataclass(frozen=True)
class Section:
    key: str
    label: str
    links: tuple[Link, ...]

    @property
    def current(self) -> bool:
        return any(link.current for link in self.links)


def _here(endpoint: str, values: Mapping[str, Any], item: Item) -> int:
    """How well `item` describes the page at `endpoint` with these values (0: not at all).
    A differing argument rules it out; a missing one (a detail page) only weakens it."""
    score = item.owns(endpoint)
    if not score or item.fragment:
        return 0
    for key, value in item.args:
        if key in values and str(values[key]) != value:
            return 0
        score += 2 if key in values else 0
    return score


def build(actor: Any, endpoint: str, values: Mapping[str, Any],
          areas: tuple[Area, ...] = AREAS) -> list[Section]:
    """The sections and links `actor` may see, with the one current link marked."""
    registered = current_app.view_functions
    shown: list[tuple[Area, list[tuple[Item, str]]]] = []
    for area in areas:
        items = []
        for item in area.items:
            if item.endpoint not in registered or not can_reach(actor, item.needs,
                                                                 item.per_app):
                continue
            try:
                args: dict[str, Any] = dict(item.args)
                url = url_for(item.endpoint, **args)
            except BuildError:  # needs more arguments (a per-application page)
                continue
            items.append((item, url + (f"#{item.fragment}" if item.fragment else "")))
        if items:
            shown.append((area, items))
    scored = [(_here(endpoint, values, item), item) for _, items in shown for item, _ in items]
    best = max(scored, key=lambda s: s[0], default=(0, None))  # the first of equals
    current = best[1] if best[0] else None
    return [Section(area.key, area.label, tuple(
        Link(item.label, url, item is current, item.badge) for item, url in items))
        for area, items in shown]


@dataclass(frozen=True)
class Crumb:
    label: str
    url: str | None  # None: not a page of its own (an area), or the page shown
    id: str = ""  # for pages that update the last crumb in place (a rename)


def breadcrumbs(sections: list[Section], tail: list[tuple[str, ...]]) -> list[Crumb]:
    """A detail page's crumbs: the area and the navigation link it is under (as the
    navigation marks it), then the page's own `tail` of (label, url[, id]), the last
    being the page itself."""
    crumbs: list[Crumb] = []
    for section in sections:
        link = next((link for link in section.links if link.current), None)
        if link is not None:
            crumbs.append(Crumb(section.label, None))
            if link.label != section.label:
                crumbs.append(Crumb(link.label, link.url))
            break
    return crumbs + [Crumb(t[0], t[1] if len(t) > 1 else None, t[2] if len(t) > 2 else "")
                     for t in tail]


def may_open(endpoint: str) -> bool:
    """Whether the current user's navigation offers the page at `endpoint` (for links in
    pages, e.g. an empty state's next step): the same rule as the navigation's."""
    if not current_user.is_authenticated or endpoint not in current_app.view_functions:
        return False
    actor = ctx().actor
    return any(can_reach(actor, item.needs, item.per_app)
               for area in AREAS for item in area.items if item.endpoint == endpoint)


def register(app: Flask) -> None:
    app.add_template_global(may_open)

    @app.context_processor
    def _nav() -> dict[str, Any]:
        def console_nav(**values: Any) -> list[Section]:
            """Called by base.html with what the page knows of its place (e.g. region;
            `endpoint`: the page it is, when a form's answer shows another page)."""
            if not current_user.is_authenticated:
                return []
            endpoint = values.pop("endpoint", None) or request.endpoint or ""
            here = {**request.args.to_dict(), **(request.view_args or {}),
                    **{k: v for k, v in values.items() if v is not None}}
            try:
                return build(ctx().actor, endpoint, here)
            except SQLAlchemyError:  # the navigation must never break a page (an error page)
                log.warning("could not build the navigation", exc_info=True)
                return []

        return {"console_nav": console_nav, "nav_breadcrumbs": breadcrumbs}
