"""The overview dashboard: the landing page after login; it refreshes itself."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, url_for
from werkzeug.routing import BuildError

from app.services import console
from app.web import ctx, page

bp = Blueprint("dashboard", __name__)
REFRESH_SECONDS = 10


def link_to(endpoint: str, **args: Any) -> str | None:
    """The address of a page if this installation has it (pages arrive one by one)."""
    if endpoint not in current_app.view_functions:
        return None
    try:
        return url_for(endpoint, **args)
    except BuildError:
        return None


@bp.get("/")
def index() -> tuple:
    c = ctx()
    view = console.overview(c, current_app.config.get("GATEWAY", "simulator"))
    return page("dashboard/index.html", "dashboard/_figures.html", view=view,
                link_to=link_to, refresh=REFRESH_SECONDS,
                regions={"mainland": "Mainland China", "international": "International"})
