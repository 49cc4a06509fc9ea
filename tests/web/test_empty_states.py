"""Issue #14: an empty list says what to do next, with a link to do it."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy.orm import Session

from tests.web.conftest import Client, soup

LIST_PAGES = ["/tasks", "/tasks?region=international", "/groups", "/alarms",
              "/alarms?event=limit", "/stats", "/stats/failures", "/stats/receipts",
              "/stats/countries", "/stats/verification", "/messages", "/messages/replies",
              "/replies", "/mute", "/unsubscribes", "/packages", "/notifications", "/apps",
              "/content/templates?region=mainland", "/content/signatures?region=international",
              "/content/qualifications", "/reviews"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # templates, not queries
def test_every_empty_list_says_what_to_do_next(root: Client, session: Session) -> None:
    problems = {}
    for url in LIST_PAGES:
        resp = root.get(url)
        assert resp.status_code == 200, url
        page = soup(resp)
        empty = page.select("main .empty")
        if len(empty) != 1:
            problems[url] = f"{len(empty)} empty states"
            continue
        links = empty[0].select("a[href]")
        if not links:
            problems[url] = f"no next step in {empty[0].get_text(' ', strip=True)!r}"
            continue
        for a in links:  # every next step leads somewhere: a page, or a form on this one
            href = str(a["href"])
            if href.startswith("#"):
                if page.select_one(f"[id='{href[1:]}']") is None:
                    problems[url] = f"no {href} on the page"
            else:
                target = urlsplit(href)
                status = root.get(target.path + (f"?{target.query}" if target.query else ""))
                if status.status_code != 200:
                    problems[url] = f"{href} answers {status.status_code}"
    assert not problems, problems
