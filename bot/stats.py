"""`/sms stats [AppID] [today|yesterday|7d|30d] [mainland|international]`: the
overview figures and the top failure reasons, with a link to the page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from slack_sdk import WebClient

from app.services import stats
from app.services.context import Ctx
from app.sms.text import REGIONS
from bot import blocks
from bot.commands import Usage

PERIODS = ("today", "yesterday", "7d", "30d")
TOP_REASONS = 5
USAGE = "Try `/sms stats 1400000001 7d international` (each word optional, any order)."


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def command(ctx: Ctx, words: list[str], _body: dict, _client: WebClient) -> dict[str, Any]:
    app_id, period, region = "", "today", "mainland"
    for word in words:
        w = word.lower()
        if w.isdigit() and not app_id:
            app_id = w
        elif w in PERIODS:
            period = w
        elif w in REGIONS:
            region = w
        else:
            raise Usage(f"“{word[:40]}” is not an AppID, a period or a region.", "stats")
    f = stats.StatsFilter(region=region, period=period, sdk_app_id=app_id)
    o = stats.overview(ctx, f)
    top = stats.failures(ctx, f)[:TOP_REASONS]
    query = urlencode({k: v for k, v in (("region", region), ("period", period),
                                         ("app", app_id)) if v})
    url = f"{ctx.settings.base_url}/stats?{query}"
    scope = f"application {app_id}" if app_id else "all applications"
    head = f"*Statistics, {region}, {period}* ({scope})"
    t = o.total
    figures = (f"Requests: *{t.requests:,}* · Accepted by the carrier: *{t.success:,}* · "
               f"Billed items: *{t.billed:,}* · Success rate: *{_pct(t.success_rate)}*")
    out = [blocks.section(f"{head}\n{figures}")]
    if top:
        lines = [f"• `{blocks.escape(s.code or '-')}` {s.count:,} ({_pct(s.share)}): "
                 f"{blocks.escape(s.reason)}" for s in top]
        out.append(blocks.section("*Top failure reasons*\n" + "\n".join(lines)))
    else:
        out.append(blocks.context("No failures in this period."))
    out.append(blocks.context(f"<{url}|Open the statistics page>"))
    return blocks.reply(f"Statistics {region} {period}: {t.requests:,} requests, "
                        f"{_pct(t.success_rate)} accepted", out)
