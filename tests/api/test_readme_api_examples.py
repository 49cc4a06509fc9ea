"""README's API examples (Python and curl), run as written against a live server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from tests.api.mgmt import new_pair
from tests.helpers import make_user, serving

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(lang: str) -> list[str]:
    section = README.read_text().split("## API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{lang}\n(.*?)```", section, re.S)


@pytest.fixture
def live(api: Flask) -> Iterator[str]:
    with serving(api, threads=2) as base:
        yield base


def test_python_and_curl_examples_work(live: str, session: Session, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    user = make_user(session, "dev@example.com", presets=["SMSFullAccess"])
    secret_id, secret_key = new_pair(session, user)
    [python] = _blocks("python")
    code = python.replace("http://127.0.0.1:5000", live)
    (tmp_path / "numbers.csv").write_text("phone,name\n13800138000,Ann\n+14155550100,Bob\n")
    monkeypatch.chdir(tmp_path)
    out: list[str] = []
    exec(code, {"SECRET_ID": secret_id, "SECRET_KEY": secret_key,  # noqa: S102 - our README
                "print": lambda *a: out.append(" ".join(map(str, a)))})
    assert out == ["pending", "2 numbers in Newsletter"]
    if not (shutil.which("curl") and shutil.which("openssl")):
        pytest.skip("curl or openssl is not installed")
    [sh] = _blocks("sh")
    result = subprocess.run(["bash", "-c", sh.replace("http://127.0.0.1:5000", live)],
                            env={"SECRET_ID": secret_id, "SECRET_KEY": secret_key,
                                 "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=30, check=True)
    answer = json.loads(result.stdout)
    assert [t["name"] for t in answer["items"]] == ["Shipped"], answer
