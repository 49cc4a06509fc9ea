"""End-to-end messages/s through the whole pipeline, and API requests/s.

For one code tree (this one, or another checkout such as main's, for a ratio
measured in the same run): a fresh PostgreSQL database, a Redis server of our own
on a free port, the demo application with its limits lifted, gunicorn serving the
API (one worker per core, 32 threads each), N smsops workers, and the simulator gateway at
zero latency with receipts at once. Client processes send signed requests; the
clock runs from the first request until every message has a final state (its
receipt applied).

    .venv/bin/python bench/pipeline_e2e.py --mode batched --workers 2
    .venv/bin/python bench/pipeline_e2e.py --mode single --workers 1 --tree /work/wt/bench-base

Modes: `batched`: 4 clients, 200 numbers per request, until --messages are
accepted. `single`: 50 clients, 1 number per request, for --seconds; also reports
the API's requests/s. `preloaded`: no API; --messages accepted rows are written
straight into the table (as the API would) and the drainer is woken once: the
workers' own capacity. Prints one Markdown table row.

Load generator (`single` mode): `--load python` (the default) runs the client
processes above, which sign each request as they go (~0.36 ms of CPU a request, a
good share of a small machine). `--load wrk` runs wrk (`apt-get install wrk`) with
bench/wrk_send.lua instead: 2 threads, --clients connections; --requests requests
(default --seconds x 3,000) are signed beforehand, each with its own nonce, and
written to one file per wrk thread, so no nonce is sent twice. A wrk thread that
runs out stops (the row is then flagged on stderr: add --requests). Accepted is
then the number of message rows (a little above wrk's completed requests: those in
flight when wrk stops are still accepted); API req/s, the median and the errors
(non-2xx responses and socket errors) are wrk's; with --cpu, clients= is wrk's CPU.

    .venv/bin/python bench/pipeline_e2e.py --mode single --workers 2 --seconds 15 --load wrk
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

LIFT = """
import json, sys
from sqlalchemy import text
from app import create_app
from app.services import accounts, app_config
from app.services.accounts import ensure_account, system_actor
from app.services.context import Ctx

sid = sys.argv[1]
app = create_app()
with app.extensions["db"].unit_of_work() as s:
    ctx = Ctx(s, system_actor(ensure_account(s)))
    app_config.set_frequency(ctx, sid, {"30s": (False, 1), "hour": (False, 5),
                                        "day": (False, 10)})
    app_config.import_countries(ctx, sid, b"US\\nGB\\nSG\\n")
    for region in ("mainland", "international"):
        app_config.set_thresholds(ctx, sid, region, alarm_threshold=None, daily_limit=None)
    accounts.update_settings(ctx, account_type="enterprise", timezone="Asia/Shanghai",
                             intl_daily_quota=999_999_999, reply_callback_url="",
                             reply_callback_enabled=False)
    s.execute(text("UPDATE application SET status_callback_url = NULL"))
"""


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM (a worker finishes its job), then SIGKILL after 20 s."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client(port: int, app_id: str, key: str, template: int, per_request: int,
           until: float, quota: int, base: int, out: multiprocessing.Queue,
           keyed: bool = False) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies, accepted, n, errors = [], 0, 0, 0
    while time.time() < until and accepted < quota:
        phones = [f"+1415555{(base + n * per_request + i) % 9000 + 1000:04d}"
                  for i in range(per_request)]
        n += 1
        body = json.dumps({"phone_numbers": phones, "template_id": template,
                           "template_params": ["123456", "5"]}).encode()
        ts, nonce = str(int(time.time())), uuid.uuid4().hex
        # Signed as README says: method, path?query, timestamp, nonce, body.
        sig = hmac.new(key.encode(), f"POST\n/api/v1/sms/send\n{ts}\n{nonce}\n".encode()
                       + body, hashlib.sha256).hexdigest()
        start = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/sms/send", body=body, headers={
                "Content-Type": "application/json", "X-SMS-AppId": app_id,
                "X-SMS-Timestamp": ts, "X-SMS-Nonce": nonce, "X-SMS-Signature": sig,
                **({"Idempotency-Key": nonce} if keyed else {})})
            resp = conn.getresponse()
            data = json.loads(resp.read())
        except (OSError, http.client.HTTPException, ValueError):
            errors += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        latencies.append((time.perf_counter() - start) * 1000)
        if resp.status == 200:
            accepted += sum(1 for s in data["send_status"] if s["code"] == "Ok")
        else:
            errors += 1
    out.put((latencies, accepted, errors, time.process_time()))


def _sign_requests(prefix: Path, key: str, template: int, n: int, threads: int,
                   clients: int, ts: int) -> None:
    """n signed one-number requests for bench/wrk_send.lua: request j in thread j % threads's
    file, its number as client j % clients would send it; "ts nonce signature body" a line."""
    files = [(prefix.parent / f"{prefix.name}{t}.tsv").open("w") for t in range(threads)]
    head = f"POST\n/api/v1/sms/send\n{ts}\n".encode()
    for j in range(n):
        phone = f"+1415555{((j % clients) * 200 + j // clients) % 9000 + 1000:04d}"
        body = json.dumps({"phone_numbers": [phone], "template_id": template,
                           "template_params": ["123456", "5"]})
        nonce = uuid.uuid4().hex
        sig = hmac.new(key.encode(), head + f"{nonce}\n{body}".encode(),
                       hashlib.sha256).hexdigest()
        files[j % threads].write(f"{ts}\t{nonce}\t{sig}\t{body}\n")
    for f in files:
        f.close()


def wrk_load(port: int, app_id: str, prefix: Path, threads: int, clients: int,
             seconds: int, keyed: bool = False) -> tuple[dict[str, int], float]:
    """Run wrk with bench/wrk_send.lua over the requests under `prefix`: the numbers of
    its done() line, and wrk's CPU seconds."""
    proc = subprocess.Popen(
        ["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds}s", "--latency",
         "-s", str(ROOT / "bench" / "wrk_send.lua"), f"http://127.0.0.1:{port}",
         "--", str(prefix), app_id, *(["keyed"] if keyed else [])], stdout=subprocess.PIPE,
        text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    # The child's own rusage as it is reaped (psutil cannot read an exited process).
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    line = next((x for x in output.splitlines() if x.startswith("wrk-summary ")), None)
    if proc.returncode or line is None:
        sys.exit(f"wrk failed ({proc.returncode}):\n{output}")
    summary = {k: int(v) for k, v in (f.split("=") for f in line.split()[1:])}
    return summary, usage.ru_utime + usage.ru_stime


def _wait_final(db_url: str, since: float, cap: float) -> tuple[int, int, float]:
    import psycopg

    # Only rows in flight, by the status index: a count over every message each poll
    # would load the database this measures.
    pending_sql = ("SELECT count(*) FROM message WHERE status IN "
                   "('accepted', 'submitting', 'submitted')")
    with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as c:
        while True:
            pending = c.execute(pending_sql).fetchone()[0]  # type: ignore[index]
            if pending == 0 or time.time() - since > cap:
                at = time.time()
                total = c.execute("SELECT count(*) FROM message").fetchone()[0]  # type: ignore[index]
                return total - pending, pending, at
            time.sleep(0.05)


def _cpu_by_role(procs: list[subprocess.Popen[bytes]], redis_pid: int,
                 db_url: str) -> dict[str, float]:
    """CPU seconds so far of each role's processes (PostgreSQL: this database's backends)."""
    import psutil
    import psycopg

    def tree_cpu(pid: int) -> float:
        try:
            p = psutil.Process(pid)
            total = 0.0
            for q in [p, *p.children(recursive=True)]:
                t = q.cpu_times()
                total += t.user + t.system
            return total
        except psutil.Error:
            return 0.0

    name = db_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        pids = [r[0] for r in c.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))]
    return {"web": tree_cpu(procs[0].pid),
            "workers": sum(tree_cpu(p.pid) for p in procs[1:]),
            "postgres": sum(tree_cpu(p) for p in pids), "redis": tree_cpu(redis_pid)}


def _cpu_line(before: dict[str, float], after: dict[str, float], n: int,
              clients_cpu: float) -> str:
    """CPU ms per message by role over the measured window (start-up excluded)."""
    used = {k: after[k] - before[k] for k in after} | {"clients": clients_cpu}
    return " ".join(f"{k}={v / max(n, 1) * 1000:.3f}" for k, v in used.items()) + \
        f" total={sum(used.values()) / max(n, 1) * 1000:.3f} (CPU ms per message)"


def _preload(db_url: str, sdk_app_id: str, n: int) -> None:
    """n accepted messages, as the API writes them, in one statement."""
    import psycopg

    with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as c:
        c.execute(
            "INSERT INTO message (account_id, app_id, serial_no, request_id, region, "
            "phone_number, iso_code, content, encoding, fee, status, sms_type, created_at) "
            "SELECT a.account_id, a.id, md5(random()::text || g), 'bench', 'international', "
            "'+1415555' || lpad((1000 + g %% 9000)::text, 4, '0'), 'US', "
            "'[Demo] Your code is 123456', 'GSM', 1, 'accepted', 'verification', now() "
            "FROM application a, generate_series(1, %s) g WHERE a.sdk_app_id = %s",
            (n, sdk_app_id))


def main() -> None:
    global PG_ADMIN
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", default=str(ROOT), help="the checkout to run")
    parser.add_argument("--mode", choices=["batched", "single", "preloaded"],
                        default="batched")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--messages", type=int, default=20_000, help="batched: how many")
    parser.add_argument("--seconds", type=float, default=10, help="single: how long")
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--load", choices=["python", "wrk"], default="python",
                        help="single: the load generator (wrk: C, requests signed beforehand)")
    parser.add_argument("--requests", type=int, default=None,
                        help="--load wrk: requests to sign beforehand (default: --seconds x 3,000)")
    parser.add_argument("--web-workers", type=int, default=os.cpu_count() or 2,
                        help="gunicorn workers (default: one per core)")
    parser.add_argument("--threads", type=int, default=32,
                        help="gunicorn gthread threads per worker (1: sync workers); "
                             "threads let one process settle many requests together")
    parser.add_argument("--server", choices=("gunicorn", "granian"), default="gunicorn",
                        help="the web server (granian: an experiment, bench/README.md)")
    parser.add_argument("--cpu", action="store_true",
                        help="also print CPU ms per message by role (web, workers, PostgreSQL, "
                             "Redis, clients)")
    parser.add_argument("--pg", default=PG_ADMIN,
                        help="the PostgreSQL server's admin URL (a database is made on it), "
                             "e.g. one of your own with pg_stat_statements loaded")
    parser.add_argument("--idempotency-key", action="store_true",
                        help="every request carries its own Idempotency-Key")
    parser.add_argument("--drain-cap", type=float, default=120,
                        help="stop waiting for the last receipts after this many seconds")
    args = parser.parse_args()
    if args.load == "wrk" and args.mode != "single":
        parser.error("--load wrk drives --mode single only")
    if args.load == "wrk" and not 1 <= round(args.seconds) <= 500:
        parser.error("--load wrk: --seconds from 1 to 500 (whole seconds; the requests' "
                     "timestamp must stay within 300 s of the clock)")
    tree = Path(args.tree).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="smsops-e2e-"))
    import psycopg

    PG_ADMIN = args.pg
    name = f"smsops_e2e_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    db_url = PG_ADMIN.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + \
        f"/{name}"
    redis_port = _free_port()
    redis_bin = shutil.which("redis-server") or "redis-server"
    redis_proc = subprocess.Popen([redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                                  stdout=subprocess.DEVNULL)
    env = {**os.environ, "SMSOPS_INSTANCE_DIR": str(tmp), "SMSOPS_DATABASE_URL": db_url,
           "SMSOPS_SECRET_KEY": "bench", "SMSOPS_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
           "SMSOPS_GATEWAY": "simulator", "SMSOPS_SIMULATOR_LATENCY_MS": "0",
           "SMSOPS_SIMULATOR_RECEIPT_DELAY_S": "0", "SMSOPS_WORKER_NO_FORK": "1",
           "PYTHONPATH": str(tree)}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        smsops = [sys.executable, "-m", "app.cli"]
        time.sleep(0.3)
        # This Redis stands in for one that has been up for a while: its record of used
        # nonces covers requests signed before the run (--load wrk signs beforehand);
        # app/services/limits.py NONCES_SINCE_KEY.
        import redis

        redis.Redis(port=redis_port).set("smsops:nonce:since", 0)
        seeded = json.loads(subprocess.run([*smsops, "demo", "--json"], env=env, check=True,
                                           capture_output=True, text=True, cwd=tree).stdout)
        subprocess.run([sys.executable, "-c", LIFT, seeded["app_id"]], env=env, check=True,
                       cwd=tree)
        template = next(t["id"] for t in seeded["templates"]
                        if t["region"] == "international" and t["sms_type"] == "verification")
        port = _free_port()
        web = ([sys.executable, "-m", "granian", "--interface", "wsgi", "--workers",
                str(args.web_workers), "--blocking-threads", str(args.threads), "--host",
                "127.0.0.1", "--port", str(port), "--log-level", "warning", "wsgi:app"]
               if args.server == "granian" else
               [sys.executable, "-m", "gunicorn", "-w", str(args.web_workers),
                *(["-k", "gthread", "--threads", str(args.threads)] if args.threads > 1 else []),
                "-b", f"127.0.0.1:{port}", "--log-level", "warning", "--backlog", "2048",
                "wsgi:app"])
        procs.append(subprocess.Popen(web, env=env, cwd=tree))
        log = (tmp / "workers.log").open("wb")
        for _ in range(args.workers):
            procs.append(subprocess.Popen([*smsops, "worker"], env=env, cwd=tree,
                                          stdout=log, stderr=log))
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/healthz")
                c.getresponse().read()
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(2)  # the workers import the app
        if args.mode == "preloaded":
            _preload(db_url, seeded["app_id"], args.messages)
            cpu0 = _cpu_by_role(procs, redis_proc.pid, db_url)
            start = time.time()
            import redis

            conn = redis.Redis.from_url(env["SMSOPS_REDIS_URL"])
            if (tree / "app" / "queue.py").read_text().find("DRAIN_JOB") >= 0:
                conn.set("smsops:wake:jobs.sending.drain", 1, ex=10)
                from rq import Queue

                Queue("pipeline", connection=conn).enqueue("jobs.sending.drain")
            else:  # main: one submit job per 200 ids, as its API enqueues them
                from rq import Queue

                with psycopg.connect(db_url.replace("+psycopg", "")) as c:
                    ids = [r[0] for r in c.execute("SELECT id FROM message ORDER BY id")]
                q = Queue("default", connection=conn)
                for i in range(0, len(ids), 200):
                    q.enqueue("jobs.sending.submit", ids[i:i + 200])
            final, pending, done_at = _wait_final(db_url, start, args.drain_cap)
            label = "base" if tree != ROOT else "this branch"
            print(f"| {label} | preloaded | {args.workers} | - | {args.messages} | - | - | "
                  f"{final / (done_at - start):.0f} | {pending} | 0 |", flush=True)
            if args.cpu:
                print(_cpu_line(cpu0, _cpu_by_role(procs, redis_proc.pid, db_url), final, 0.0),
                      flush=True)
            return
        per_request = 200 if args.mode == "batched" else 1
        clients = args.clients or (4 if args.mode == "batched" else 50)
        label = "base" if tree != ROOT else "this branch"
        if args.load == "wrk":
            seconds, threads = round(args.seconds), min(2, clients)
            prefix = tmp / "wrk-requests-"
            # One timestamp for all, half the run ahead: within 300 s of the clock throughout.
            _sign_requests(prefix, seeded["app_key"], template, args.requests or seconds * 3000,
                           threads, clients, int(time.time() + seconds / 2))
            cpu0 = _cpu_by_role(procs, redis_proc.pid, db_url)
            start = time.time()
            summary, clients_cpu = wrk_load(port, seeded["app_id"], prefix, threads, clients,
                                            seconds, args.idempotency_key)
            sent_at = time.time()
            if summary["ran_out"]:
                print(f"{summary['ran_out']} wrk thread(s) ran out of signed requests: "
                      "raise --requests", file=sys.stderr)
            final, pending, done_at = _wait_final(db_url, sent_at, args.drain_cap)
            accepted = final + pending  # message rows: what the API accepted
            rate = summary["requests"] / (summary["duration_us"] / 1e6)
            median = summary["p50_us"] / 1000
            errors = sum(summary[k] for k in ("status", "connect", "read", "write", "timeout"))
        else:
            window = args.seconds if args.mode == "single" else 600
            quota = args.messages // clients if args.mode == "batched" else 10**9
            out: multiprocessing.Queue = multiprocessing.Queue()
            cpu0 = _cpu_by_role(procs, redis_proc.pid, db_url)
            until = time.time() + window
            senders = [multiprocessing.Process(target=client, args=(
                port, seeded["app_id"], seeded["app_key"], template, per_request, until,
                quota, i * 200, out, args.idempotency_key)) for i in range(clients)]
            start = time.time()
            for p in senders:
                p.start()
            results = [out.get() for _ in senders]
            sent_at = time.time()
            for p in senders:
                p.join()
            final, pending, done_at = _wait_final(db_url, sent_at, args.drain_cap)
            latencies = sorted(x for lat, _a, _e, _c in results for x in lat)
            accepted = sum(a for _l, a, _e, _c in results)
            errors = sum(e for _l, _a, e, _c in results)
            rate = len(latencies) / (sent_at - start)
            median = latencies[len(latencies) // 2]
            clients_cpu = sum(c for _l, _a, _e, c in results)
        print(f"| {label} | {args.mode} | {args.workers} | {clients} | {accepted} | "
              f"{rate:.0f} | {median:.1f} | {final / (done_at - start):.0f} | "
              f"{pending} | {errors} |", flush=True)
        if args.cpu:
            print(_cpu_line(cpu0, _cpu_by_role(procs, redis_proc.pid, db_url), final,
                            clients_cpu), flush=True)
    finally:
        stop(procs)
        redis_proc.kill()
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
