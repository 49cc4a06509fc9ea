"""Basic configuration rules (SPEC.md §1)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from app.services import accounts, app_config, apps
from app.services.errors import Conflict, ValidationError
from tests.helpers import make_app, root_ctx


@pytest.fixture
def sid(session: Session) -> str:
    return make_app(session)


def test_thresholds(session: Session, sid: str) -> None:
    c = root_ctx(session)
    app = app_config.set_thresholds(c, sid, "mainland", alarm_threshold="800",
                                    daily_limit="1,000")
    assert (app.mainland_alarm_threshold, app.mainland_daily_limit) == (800, 1000)
    app_config.set_thresholds(c, sid, "mainland", alarm_threshold="", daily_limit="")
    assert app.mainland_daily_limit is None
    with pytest.raises(ValidationError, match="must not exceed"):
        app_config.set_thresholds(c, sid, "mainland", alarm_threshold=10, daily_limit=5)
    with pytest.raises(ValidationError, match="whole number"):
        app_config.set_thresholds(c, sid, "mainland", alarm_threshold="-1", daily_limit="")
    # The international limit may not exceed the account quota (100 by default).
    with pytest.raises(ValidationError, match="quota of 100"):
        app_config.set_thresholds(c, sid, "international", alarm_threshold=1, daily_limit=101)
    with pytest.raises(ValidationError, match="mainland or international"):
        app_config.set_thresholds(c, sid, "moon", alarm_threshold=1, daily_limit=2)


def test_country_limits_follow_the_app_limit(session: Session, sid: str) -> None:
    c = root_ctx(session)
    app_config.set_thresholds(c, sid, "international", alarm_threshold=40, daily_limit=50)
    app = app_config.set_country(c, sid, iso_code=" us ", daily_limit=30)
    assert [(x.iso_code, x.daily_limit) for x in app.countries] == [("US", 30)]
    with pytest.raises(ValidationError, match="application's international limit of 50"):
        app_config.set_country(c, sid, iso_code="GB", daily_limit=51)
    with pytest.raises(ValidationError, match="not an ISO 3166"):
        app_config.set_country(c, sid, iso_code="XX")
    with pytest.raises(ValidationError, match="Mainland China"):
        app_config.set_country(c, sid, iso_code="CN")
    with pytest.raises(ValidationError, match="US"):  # app limit below a country's
        app_config.set_thresholds(c, sid, "international", alarm_threshold=None, daily_limit=20)
    app_config.remove_country(c, sid, "US")
    assert apps.get_app(c, sid).countries == []


def test_country_limits_without_an_app_limit_follow_the_account_quota(
        session: Session, sid: str) -> None:
    """Found from outside: with the application's international limit blank, a country
    limit of 5,000 was accepted under an account quota of 100: a limit that never
    applies, shown as if it did. The quota is the ceiling then."""
    c = root_ctx(session)
    with pytest.raises(ValidationError, match="account's international quota of 100"):
        app_config.set_country(c, sid, iso_code="FR", daily_limit=5000)
    with pytest.raises(ValidationError, match="quota of 100"):
        app_config.import_countries(c, sid, b"FR,1,101\n")
    app = app_config.set_country(c, sid, iso_code="FR", daily_limit=100)
    assert [(x.iso_code, x.daily_limit) for x in app.countries] == [("FR", 100)]


def test_country_import_is_all_or_nothing(session: Session, sid: str) -> None:
    c = root_ctx(session)
    with pytest.raises(ValidationError) as exc:
        app_config.import_countries(c, sid, b"iso\nUS,1,2\nZZ\nGB,5,a\n")
    msg = exc.value.errors["file"]
    assert "line 3" in msg and "ZZ" in msg and "line 4" in msg
    assert apps.get_app(c, sid).countries == []
    with pytest.raises(ValidationError, match="not UTF-8"):
        app_config.import_countries(c, sid, b"\xff\xfe\x00U")
    assert app_config.import_countries(c, sid, b"\xef\xbb\xbfUS,1,2\r\n\r\nsg\n") == 2
    assert sorted(x.iso_code for x in apps.get_app(c, sid).countries) == ["SG", "US"]


def test_country_import_reads_mac_line_ends_and_refuses_what_csv_cannot(
        session: Session, sid: str) -> None:
    """Found from outside: Excel's "CSV (Macintosh)" (CR line ends), a field over the
    csv module's limit and a 5,000-digit number each gave a 500."""
    c = root_ctx(session)
    assert app_config.import_countries(c, sid, b"iso\rUS,1,2\rSG\r") == 2
    with pytest.raises(ValidationError, match="line 1"):
        app_config.import_countries(c, sid, b"US," + b"1" * 200_000 + b"\n")
    with pytest.raises(ValidationError, match="line 1"):
        app_config.import_countries(c, sid, b"GB," + b"9" * 5000 + b"\n")
    assert sorted(x.iso_code for x in apps.get_app(c, sid).countries) == ["SG", "US"]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/cb", "https://10.1.2.3/cb", "http://169.254.169.254/latest/meta-data",
    "http://[::1]:8080/", "http://localhost:5000/x", "http://0.0.0.0/", "http://192.168.1.5/",
])
def test_callback_refuses_private_addresses(session: Session, sid: str, url: str) -> None:
    with pytest.raises(ValidationError, match="private"):
        app_config.set_callback(root_ctx(session), sid, url)
    app = app_config.set_callback(root_ctx(session, allow_private_callbacks=True), sid, url)
    assert app.status_callback_url == url


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://93.184.216.34/x", "http"), ("https://", "no host"),
    ("https://user:pw@93.184.216.34/", "Credentials"), ("http://[zz/", "not a valid URL"),
])
def test_callback_refuses_bad_urls(session: Session, sid: str, url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        app_config.set_callback(root_ctx(session), sid, url)


def test_callback_accepts_public_and_clears(session: Session, sid: str) -> None:
    c = root_ctx(session)
    assert app_config.set_callback(c, sid, " https://93.184.216.34/r ").status_callback_url == (
        "https://93.184.216.34/r")
    assert app_config.set_callback(c, sid, "").status_callback_url is None


def test_frequency_rules_and_individual_caps(session: Session, sid: str) -> None:
    c = root_ctx(session)
    app = app_config.set_frequency(c, sid, {"30s": (True, 1), "hour": (False, 40),
                                            "day": (True, 20)})
    assert (app.freq_hour_enabled, app.freq_hour_limit, app.freq_day_limit) == (False, 40, 20)
    with pytest.raises(ValidationError, match="individual caps"):
        accounts.update_settings(c, account_type="individual", timezone="Asia/Shanghai",
                                 intl_daily_quota=100, reply_callback_url="",
                                 reply_callback_enabled=False)
    app_config.set_frequency(c, sid, {"30s": (True, 1), "hour": (False, 40), "day": (True, 10)})
    accounts.update_settings(c, account_type="individual", timezone="Asia/Shanghai",
                             intl_daily_quota=100, reply_callback_url="",
                             reply_callback_enabled=False)
    with pytest.raises(ValidationError) as exc:
        app_config.set_frequency(c, sid, {"30s": (True, 2), "hour": (True, 6),
                                          "day": (True, 11)})
    assert set(exc.value.errors) == {"30s_limit", "hour_limit", "day_limit"}
    with pytest.raises(ValidationError, match="At least 1"):
        app_config.set_frequency(c, sid, {"30s": (True, 0), "hour": (True, 1), "day": (True, 1)})


def test_allowlist_rules(session: Session, sid: str) -> None:
    c = root_ctx(session)
    with pytest.raises(ValidationError) as exc:
        app_config.add_allowlist(c, sid, "+8613800000000\n13800000001\n+1 415 555 0100\n+999")
    msg = exc.value.errors["numbers"]
    # Plain mainland numbers are accepted as everywhere else (issue #8); only +999 is not.
    assert msg.startswith("Line 4 (+999): Not a phone number") and "Line 2" not in msg
    assert apps.get_app(c, sid).allowlist == []  # nothing saved
    assert app_config.add_allowlist(c, sid, "+8613800000000\n\n+14155550100\n+8613800000000") == 2
    assert app_config.add_allowlist(c, sid, "+8613800000000") == 0  # already there
    with pytest.raises(ValidationError, match="100 numbers per add"):
        app_config.add_allowlist(c, sid, "\n".join(f"+86138{i:08d}" for i in range(101)))
    for batch, count in enumerate((100, 100, 98)):  # 2 + 298 = 300
        app_config.add_allowlist(c, sid, "\n".join(
            f"+86139{batch}{i:07d}" for i in range(count)))
    with pytest.raises(ValidationError, match="at most 300"):
        app_config.add_allowlist(c, sid, "+8613700000000")
    assert len(apps.get_app(c, sid).allowlist) == 300  # unchanged after the refusal
    assert app_config.remove_allowlist(c, sid, ["+8613800000000", "+10000000000"]) == 1


def test_alarm_contacts(session: Session, sid: str) -> None:
    c = root_ctx(session)
    contact = app_config.add_contact(c, sid, name="Ops", mobile="13800000000",
                                     email="Ops@Example.com", slack_user_id="u012ab3cd",
                                     events=["review", "threshold"])
    assert contact.mobile == "+8613800000000" and contact.slack_user_id == "U012AB3CD"
    assert contact.events == ["threshold", "review"]  # catalogue order
    with pytest.raises(ValidationError) as exc:
        app_config.add_contact(c, sid, name="", mobile="12", email="nope", slack_user_id="x",
                               events=["weather"])
    assert set(exc.value.errors) == {"name", "mobile", "email", "slack_user_id", "events"}
    with pytest.raises(ValidationError, match="at least one way"):
        app_config.add_contact(c, sid, name="Ghost", events=[])
    for i in range(4):
        app_config.add_contact(c, sid, name=f"c{i}", email=f"c{i}@example.com", events=[])
    with pytest.raises(Conflict, match="at most 5"):
        app_config.add_contact(c, sid, name="sixth", email="six@example.com", events=[])
    app_config.update_contact(c, sid, contact.id, name="Ops 2", email="", mobile="+14155550100",
                              events=[])
    assert contact.name == "Ops 2" and contact.email is None
    app_config.delete_contact(c, sid, contact.id)
    assert len(apps.get_app(c, sid).contacts) == 4
