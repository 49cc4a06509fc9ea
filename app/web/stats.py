"""Statistics pages (SPEC.md §7): overview, failures, receipts, countries,
verification-code volume; each also downloads as CSV (`?export=csv`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, request

from app.services import stats
from app.services.errors import ValidationError
from app.sms import periods
from app.sms.csvcells import to_csv
from app.sms.text import INTERNATIONAL, MAINLAND
from app.web import charts, ctx, page

bp = Blueprint("stats", __name__, url_prefix="/stats")

PAGES = {"overview": "Overview", "failures": "Failure analysis",
         "receipts": "Receipt analysis", "countries": "Countries and regions",
         "verification": "Verification codes"}


def choice_id(name: str) -> int | None:
    """An id chosen from a list (query argument `name`), or None when not given."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise ValidationError({name: "Choose one from the list."})
    return int(raw)


def _filter(region: str | None) -> stats.StatsFilter:
    a = request.args
    return stats.StatsFilter(
        region=region or a.get("region", MAINLAND)[:16], period=a.get("period", "today")[:16],
        start=a.get("start", "")[:10], end=a.get("end", "")[:10],
        sdk_app_id=a.get("app", "")[:10], signature_id=choice_id("signature"),
        template_id=choice_id("template"), iso_code=a.get("country", "")[:2])


def _page() -> int:
    raw = request.args.get("page", "1").strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6 or int(raw) < 1:
        raise ValidationError({"page": "Give a page number from 1."})
    return int(raw)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _label(at: datetime, hourly: bool) -> str:
    return at.strftime("%H:00") if hourly else at.strftime("%m-%d")


def _csv(name: str, f: stats.StatsFilter, header: Sequence[str],
         rows: Sequence[Sequence[Any]]) -> Response:
    filename = f"{name}-{f.region}-{f.period}.csv"
    return Response(to_csv(header, rows), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _render(name: str, build: Callable[[stats.StatsFilter], dict[str, Any]],
            csv: Callable[[dict[str, Any]], tuple[Sequence[str], Sequence[Sequence[Any]]]],
            only: str | None = None) -> Any:
    """Shared by the five pages: parse the filter, build, answer as page,
    htmx fragment or CSV. A bad filter is shown above the form, never a 500."""
    region = only or request.args.get("region", MAINLAND)
    if region not in stats.REGIONS:
        region = MAINLAND
    c = ctx()
    error, data, f = "", {}, stats.StatsFilter(region=region)
    try:
        f = _filter(only)
        data = build(f)
    except ValidationError as exc:
        error = " ".join(exc.errors.values())
    if request.args.get("export") == "csv" and not error:
        header, rows = csv(data)
        return _csv(name, f, header, rows)
    status = 400 if error and not request.htmx else 200  # type: ignore[attr-defined]
    return page("stats/page.html", "stats/_body.html", status, f=f, name=name,
                pages=PAGES, error=error, choices=stats.choices(c, f.region),
                periods=periods.PERIODS, pct=_pct, args=request.args, **data)


@bp.get("")
def overview() -> Any:
    def build(f: stats.StatsFilter) -> dict[str, Any]:
        o = stats.overview(ctx(), f)
        labels = [_label(b, o.window.hourly) for b, _fig in o.trend]
        chart = charts.trend(labels, {"Requests": [x.requests for _b, x in o.trend],
                                      "Accepted by the carrier": [x.success
                                                                  for _b, x in o.trend],
                                      "Billed items": [x.billed for _b, x in o.trend]},
                             "By hour" if o.window.hourly else "By day")
        return {"o": o, "labels": labels, "chart": chart}

    def csv(d: dict[str, Any]) -> tuple[Sequence[str], Sequence[Sequence[Any]]]:
        o = d["o"]
        return (["period", "requests", "success", "billed_items", "success_rate"],
                [[b.isoformat(), x.requests, x.success, x.billed, _pct(x.success_rate)]
                 for b, x in o.trend])
    return _render("overview", build, csv)


@bp.get("/failures")
def failures() -> Any:
    def build(f: stats.StatsFilter) -> dict[str, Any]:
        return {"rows": stats.failures(ctx(), f)}

    def csv(d: dict[str, Any]) -> tuple[Sequence[str], Sequence[Sequence[Any]]]:
        return (["error_code", "reason", "count", "share"],
                [[r.code, r.reason, r.count, _pct(r.share)] for r in d["rows"]])
    return _render("failures", build, csv)


@bp.get("/receipts")
def receipts() -> Any:
    def build(f: stats.StatsFilter) -> dict[str, Any]:
        return {"r": stats.receipts(ctx(), f)}

    def csv(d: dict[str, Any]) -> tuple[Sequence[str], Sequence[Sequence[Any]]]:
        r = d["r"]
        rows: list[list[Any]] = [
            ["with_receipt", "", r.with_receipt, ""],
            ["without_receipt", "", r.without_receipt, ""],
            ["delivered", "", r.delivered, ""], ["failed", "", r.failed, ""],
            ["receipt_rate", "", _pct(r.receipt_rate), ""],
            ["delivery_rate", "", _pct(r.delivery_rate), ""]]
        rows += [["receipt_failure", s.code, s.count, _pct(s.share)] for s in r.reasons]
        return ["figure", "carrier_code", "value", "share"], rows
    return _render("receipts", build, csv)


@bp.get("/countries")
def countries() -> Any:
    def build(f: stats.StatsFilter) -> dict[str, Any]:
        rows = stats.countries(ctx(), f)
        top = [(r.iso_code, r.figures.requests) for r in rows[:8]]
        rest = sum(r.figures.requests for r in rows[8:])
        if rest:
            top.append(("Others", rest))
        return {"rows": rows, "chart": charts.donut(top, "Share of requests") if rows
                else None}

    def csv(d: dict[str, Any]) -> tuple[Sequence[str], Sequence[Sequence[Any]]]:
        return (["country", "calling_code", "requests", "success", "success_rate",
                 "billed_items", "unit_price_cents", "share"],
                [[r.iso_code, r.calling_code, r.figures.requests, r.figures.success,
                  _pct(r.figures.success_rate), r.figures.billed,
                  "" if r.unit_price is None else r.unit_price, _pct(r.share)]
                 for r in d["rows"]])
    return _render("countries", build, csv, only=INTERNATIONAL)


@bp.get("/verification")
def verification() -> Any:
    def build(f: stats.StatsFilter) -> dict[str, Any]:
        if request.args.get("export") == "csv":  # every row
            return {"rows": stats.verification(ctx(), f)}
        page = _page()
        rows, total = stats.verification_page(ctx(), f, page)
        return {"rows": rows, "total": total, "page": page,
                "page_size": stats.VERIFICATION_PAGE}

    def csv(d: dict[str, Any]) -> tuple[Sequence[str], Sequence[Sequence[Any]]]:
        return (["hour", "app", "app_name", "requests", "success_rate",
                 "same_hour_yesterday", "growth"],
                [[r.hour.isoformat(), r.sdk_app_id, r.app_name, r.requests,
                  _pct(r.success_rate), r.yesterday, _pct(r.growth)] for r in d["rows"]])
    return _render("verification", build, csv)
