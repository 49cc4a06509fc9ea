"""Issue #8, the server side: what a first-time user of the console ran into."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Flask
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Account, AuditEntry, CreditPackage, Signature
from app.services import audit
from tests.helpers import root_ctx
from tests.web.conftest import Client, soup, text_of

SETTINGS = {"account_type": "enterprise", "intl_daily_quota": "100"}


# --- 1. the time zone ------------------------------------------------------------

def test_settings_refuse_a_300_character_time_zone(root: Client, session: Session) -> None:
    root.get("/settings")
    for zone in ("A" * 300, "America", "../../etc/passwd", "Asia/Nowhere", "localtime", ""):
        resp = root.post("/settings", {**SETTINGS, "timezone": zone}, htmx=True)
        assert resp.status_code == 422, zone
        assert "Unknown time zone" in text_of(resp, "#settings .invalid"), zone
    session.expire_all()
    assert session.scalar(select(Account.timezone)) == "Asia/Shanghai"


def test_settings_offer_the_time_zones_as_a_list(root: Client, session: Session) -> None:
    page = soup(root.get("/settings"))
    picker = page.select_one("select[name=timezone]")
    assert picker is not None and page.select_one("input[name=timezone]") is None
    names = [o.get_text() for o in picker.select("option")]
    assert "Europe/Paris" in names and "Asia/Shanghai" in names and "localtime" not in names
    assert picker.select_one("option[selected]").get_text() == "Asia/Shanghai"
    assert root.post("/settings", {**SETTINGS, "timezone": "Europe/Paris"}).status_code == 302
    session.expire_all()
    assert session.scalar(select(Account.timezone)) == "Europe/Paris"


# --- 2. the audit log ------------------------------------------------------------

def test_audit_values_are_readable_and_escaped(root: Client, session: Session) -> None:
    name = "短信 <b>Ünïcode</b>"
    audit.record(root_ctx(session), "ModifyAppInfo", "app", "1400000001",
                 {"name": "old"}, {"name": name, "overview": "x" * 5000})
    session.commit()
    page = root.get("/audit")
    html = page.get_data(as_text=True)
    assert "\\u" not in html  # no JSON escapes on screen
    row = soup(page).select_one("table.audit tbody tr")
    assert row is not None
    assert name in row.get_text()  # readable, as typed
    assert row.select("b") == []  # and escaped: no markup from the value
    assert "&lt;b&gt;" in html
    # Long values are cut, with the whole value one click away.
    details = row.select_one("details")
    assert details is not None
    assert len(details.select_one("summary").get_text()) < 400
    assert "x" * 5000 in details.get_text()


def test_audit_shows_non_text_values_plainly(root: Client, session: Session) -> None:
    root.get("/apps")
    root.post("/apps", {"name": "One", "tags": "a, b"})
    row = soup(root.get("/audit")).select_one("table.audit tbody tr")
    assert row is not None
    cells = {dt.get_text(): dd.get_text() for dt, dd in zip(row.select("dt"), row.select("dd"),
                                                              strict=True)}
    assert cells["name"] == "One"
    assert cells["tags"] == '["a", "b"]'
    assert session.scalar(select(AuditEntry.after))["name"] == "One"  # stored unchanged


# --- 5. signature images ---------------------------------------------------------

def _png(width: int = 6, height: int = 6) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), "blue").save(buf, "PNG")
    return buf.getvalue()


def _bomb_png(side: int = 20_000) -> bytes:
    """A 1-bit side x side PNG of zeros: a few dozen KB that decode to 400 megapixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    row = b"\0" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)
            + chunk(b"IEND", b""))


def _post_signature(root: Client, image: bytes, **fields: str) -> object:
    root.get("/content/signatures/new?region=international")
    return root.http.post("/content/signatures/new?region=international", data={
        "csrf_token": root.token, "purpose": "self", "sign_type": "trademark",
        "content": "Brand", **fields, "proof_image": (io.BytesIO(image), "proof.png")},
        content_type="multipart/form-data")


def _stored(instance_dir: Path) -> list[str]:
    folder = instance_dir / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_invalid_form_with_a_valid_image_stores_nothing(root: Client, session: Session,
                                                        instance_dir: Path) -> None:
    resp = _post_signature(root, _png(), content="X")  # too short a signature
    assert resp.status_code == 422  # type: ignore[attr-defined]
    assert "2 to 12 characters" in text_of(resp, ".invalid")  # type: ignore[arg-type]
    assert _stored(instance_dir) == []
    assert session.scalar(select(Signature)) is None
    ok = _post_signature(root, _png())
    assert ok.status_code == 302  # type: ignore[attr-defined]
    sig = session.scalar(select(Signature))
    assert sig is not None and _stored(instance_dir) == [sig.proof_image]


def test_replaced_image_file_is_removed_after_the_commit(root: Client, session: Session,
                                                         instance_dir: Path) -> None:
    assert _post_signature(root, _png()).status_code == 302  # type: ignore[attr-defined]
    sig = session.scalar(select(Signature))
    assert sig is not None
    first = sig.proof_image
    root.http.post(f"/content/signatures/{sig.id}", data={
        "csrf_token": root.token, "purpose": "self", "sign_type": "trademark",
        "content": "Brand", "proof_image": (io.BytesIO(_png(8, 8)), "new.png")},
        content_type="multipart/form-data")
    session.expire_all()
    sig = session.get(Signature, sig.id)
    assert sig is not None and sig.proof_image != first
    assert _stored(instance_dir) == [sig.proof_image]
    assert root.post(f"/content/signatures/{sig.id}/delete").status_code == 302
    assert _stored(instance_dir) == []


def test_decompression_bomb_is_refused_with_a_clear_error(root: Client, session: Session,
                                                          instance_dir: Path,
                                                          app: Flask) -> None:
    bomb = _bomb_png()
    assert len(bomb) < 200_000
    resp = _post_signature(root, bomb)
    assert resp.status_code == 422  # type: ignore[attr-defined]
    error = text_of(resp, ".invalid .error")  # type: ignore[arg-type]
    assert "40 megapixels" in error
    big = _post_signature(root, _bomb_png(7_000))  # 49 MP: under Pillow's own limit
    assert big.status_code == 422  # type: ignore[attr-defined]
    assert "7000 × 7000" in text_of(big, ".invalid .error")  # type: ignore[arg-type]  # noqa: RUF001
    assert _stored(instance_dir) == [] and session.scalar(select(Signature)) is None


# --- 3. credit package expiry is a date in the account's zone ---------------------

def test_package_expiry_shows_the_date_entered(root: Client, session: Session) -> None:
    root.get("/packages")
    assert root.post("/packages", {"form": "package", "name": "Year", "size": "100",
                                   "expires_on": "2027-12-31"}).status_code == 302
    cells = [td.get_text(" ", strip=True)
             for td in soup(root.get("/packages")).select("#package-rows tbody tr td")]
    assert cells[-1] == "2027-12-31", cells  # not "2028-01-01 07:59:59 CST"
    stored = session.scalar(select(CreditPackage.expires_at))
    assert stored is not None
    assert stored.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S") == (
        "2027-12-31 23:59:59")
    form = soup(root.get("/packages"))  # the form says which zone the day is in
    assert "Asia/Shanghai" in form.select_one("label:has(input[name=expires_on]) small").text
