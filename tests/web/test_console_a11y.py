"""Issue #14: what can be checked without a browser on every top-level page: labels on
every field, names on every control, unique ids, the language. (axe-core runs in the
browser tests: tests/e2e/test_console_nav_browser.py.)"""

from __future__ import annotations

from collections import Counter

from sqlalchemy.orm import Session

from tests.sending.conftest import Shop
from tests.web.conftest import Client, soup

TOP_LEVEL = ("/", "/send", "/content/qualifications", "/content/signatures?region=mainland",
             "/content/templates?region=mainland", "/content/signatures?region=international",
             "/content/templates?region=international", "/messages", "/apps",
             "/notifications", "/mute", "/unsubscribes", "/replies", "/packages", "/reviews",
             "/users", "/policies", "/audit", "/settings", "/account")


def _problems(html: object) -> list[str]:
    page = soup(html)  # type: ignore[arg-type]
    found: list[str] = []
    if not page.html or not page.html.get("lang"):
        found.append("no lang on <html>")
    if page.title is None or "<" in page.title.get_text():
        found.append("no title, or markup in it")
    labelled_ids = {str(label["for"]) for label in page.select("label[for]")}
    for field in page.select("input, select, textarea"):
        if field.get("type") in ("hidden", "submit", "button"):
            continue
        if (field.find_parent("label") is None and field.get("id") not in labelled_ids
                and not field.get("aria-label") and not field.get("aria-labelledby")):
            found.append(f"unlabelled {field.name} {field.get('name')}")
    for control in page.select("button, a[href]"):
        if not control.get_text(strip=True) and not control.get("aria-label"):
            found.append(f"nameless {control.name} {control.attrs}")
    found += [f"image without alt {img.get('src')}" for img in page.select("img:not([alt])")]
    found += [f"duplicate id {i}" for i, n in Counter(
        str(e["id"]) for e in page.select("[id]")).items() if n > 1]
    return found


def test_every_top_level_page_has_labels_names_and_unique_ids(root: Client, shop: Shop,
                                                               session: Session) -> None:
    shop.send(["+14155550101"])
    session.commit()
    problems = {}
    for path in (*TOP_LEVEL, f"/apps/{shop.app.sdk_app_id}"):
        resp = root.get(path, follow_redirects=True)
        assert resp.status_code == 200, path
        if found := _problems(resp):
            problems[path] = found
    root.post("/logout")
    login = root.get("/login")
    if found := _problems(login):
        problems["/login"] = found
    assert not problems, problems
