"""How fast the bot acknowledges Slack: a slash command and a button click.

Runs the real app under waitress on loopback with SQLite and an embedded Redis,
the Slack Web API answered by a loopback server, and sends signed requests as
Slack does. Slack wants an ack within 3 s; this reports p50 and p99.

    .venv/bin/python bench/slack_ack.py [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from waitress import create_server

from app import create_app, migrate
from app.redisconn import shutdown_embedded
from app.services import content
from app.services.accounts import actor_for, ensure_account
from app.services.context import Ctx
from app.services.users import bootstrap_user
from tests.bot.conftest import SIGNING_SECRET, SlackAPI, sign


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    n = parser.parse_args().requests
    tmp = Path(tempfile.mkdtemp(prefix="smsops-bench-"))
    api = SlackAPI()
    url = f"sqlite:///{tmp / 'bench.db'}"
    migrate.upgrade(url)
    app = create_app({"DATABASE_URL": url, "INSTANCE_DIR": str(tmp), "SECRET_KEY": "bench",
                      "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                      "SLACK_API_URL": f"{api.url}/api/", "SLACK_REVIEW_CHANNEL": "CREVIEW"})
    with app.extensions["db"].unit_of_work() as s:
        account = ensure_account(s)
        author, _ = bootstrap_user(s, account, "author@example.com", "bench-password",
                                   root=True)
        reviewer, _ = bootstrap_user(s, account, "reviewer@example.com", "bench-password",
                                     root=True)
        author.slack_user_id, reviewer.slack_user_id = "U0AUTHOR1", "U0REVIEW1"
        ctx = Ctx(s, actor_for(author))
        ids = [content.create_template(ctx, "international", {
            "name": f"t{i}", "sms_type": "notification", "content": f"Order {{1}} #{i}"}).id
            for i in range(n)]
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.effective_port}/slack/events"

    def timed(body: str) -> float:
        req = urllib.request.Request(endpoint, data=body.encode(), headers=sign(body))
        start = time.perf_counter()
        with urllib.request.urlopen(req) as resp:
            resp.read()
            assert resp.status == 200
        return (time.perf_counter() - start) * 1000

    command = urlencode({"command": "/sms", "text": "apps", "user_id": "U0AUTHOR1",
                         "trigger_id": "1.2.3", "response_url": f"{api.url}/r"})
    for _ in range(20):  # warm up
        timed(command)
    slash = [timed(command) for _ in range(n)]


    clicks = []
    for tid in ids:
        payload = {"type": "block_actions", "user": {"id": "U0REVIEW1"},
                   "trigger_id": "1.2.3", "channel": {"id": "CREVIEW"},
                   "container": {"type": "message"}, "response_url": f"{api.url}/r",
                   "actions": [{"action_id": "review_approve", "value": f"template:{tid}:1",
                                "block_id": "b", "type": "button"}]}
        clicks.append(timed(urlencode({"payload": json.dumps(payload)})))
    with app.extensions["db"].unit_of_work() as s:  # every click decided, none refused
        from sqlalchemy import func, select

        from app.models import Template

        decided = s.scalar(select(func.count()).where(Template.status == "effective"))
        assert decided == n, f"only {decided} of {n} clicks approved"
    server.close()
    api.close()
    shutdown_embedded()  # start nothing we do not stop
    print("| case | requests | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for name, values in (("/sms apps (slash command)", slash),
                         ("Approve click (decision + jobs enqueued)", clicks)):
        print(f"| {name} | {len(values)} | {statistics.median(values):.1f} | "
              f"{percentile(values, 99):.1f} | {max(values):.1f} |")


if __name__ == "__main__":
    main()
