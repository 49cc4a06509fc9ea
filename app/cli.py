"""The `smsops` command: run the product, manage the database, users and apps."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup

from app import create_app, migrate
from app.config import SERVING_URL
from app.encryption import EncryptionKeyError
from app.queue import enqueue_deferred
from app.redisconn import embedded_pids, shutdown_embedded
from app.services import apps as app_service
from app.services.accounts import ensure_account, system_actor
from app.services.context import Ctx, Settings
from app.services.errors import ServiceError
from app.supervise import die_with_supervisor, exit_after, forks_die_with_us

T = TypeVar("T")
ROOT_EMAIL = "admin@example.com"  # change it with SMSOPS_ROOT_EMAIL


def _factory() -> Flask:
    return create_app()


class _Group(FlaskGroup):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EncryptionKeyError as exc:  # a setup fault: one clear line, no traceback
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, create_app=_factory, add_default_commands=False,
             add_version_option=False)
def cli() -> None:
    """smsops: the SMS operations console."""


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def _as_operator(work: Callable[[Ctx], T]) -> T:
    """Run `work` as the server's operator in one unit of work; jobs it deferred
    start after the commit."""
    app = current_app
    migrate.upgrade(app.config["DATABASE_URL"])
    with app.extensions["db"].unit_of_work() as session:
        _check_keys(session)  # never add rows under a key that cannot read the others
        ctx = Ctx(session, system_actor(ensure_account(session)),
                  Settings.from_config(app.config), gateway=app.extensions["gateway"])
        result = work(ctx)
    enqueue_deferred(app.extensions["redis"], ctx.deferred)
    return result


def _ensure_root(session: Any) -> tuple[str, str | None] | None:
    """On an empty installation, create the root user with a one-time password."""
    from sqlalchemy import select

    from app.models import User
    from app.services.users import bootstrap_user

    if session.scalar(select(User.id).limit(1)) is not None:
        return None
    account = ensure_account(session)
    email = current_app.config.get("ROOT_EMAIL") or ROOT_EMAIL
    _user, password = bootstrap_user(session, account, email, None, root=True)
    return email, password


def _check_keys(session: Any) -> None:
    """Refuse to start when the encryption key cannot read the stored AppKeys."""
    from sqlalchemy import select

    from app.models import Application

    session.scalars(select(Application.app_key).limit(1)).all()  # decrypts, or raises


# --- run / worker -------------------------------------------------------------

@cli.command("run")
@click.option("--host", default=None, help="Default: SMSOPS_HOST or 127.0.0.1")
@click.option("--port", default=None, type=int, help="Default: SMSOPS_PORT or 5000")
@click.option("--threads", default=8, show_default=True)
def run_command(host: str | None, port: int | None, threads: int) -> None:
    """Start the web server, an RQ worker and its scheduler; Ctrl-C stops all."""
    from waitress import create_server

    from app.supervise import Children, InstanceLock, freeze_heap

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    lock = InstanceLock(Path(app.config["INSTANCE_DIR"]))
    if not lock.acquire():
        _fail(f"smsops is already running on {app.config['INSTANCE_DIR']} (pid "
              f"{lock.holder()}); stop it first.")

    def _stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    # Explicit, because a shell starting us in the background leaves SIGINT ignored;
    # set first, so a stop during start-up also stops whatever has started.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    children = Children(float(app.config["SHUTDOWN_TIMEOUT"]))
    children.guard(embedded_pids())  # the embedded Redis ends with us, however we end
    server = None
    try:
        migrate.upgrade(app.config["DATABASE_URL"])
        db = app.extensions["db"]
        with db.unit_of_work() as session:
            created = _ensure_root(session)
            ensure_account(session)
            _check_keys(session)
        host = host or app.config["HOST"]
        port = port or int(app.config["PORT"])
        try:  # before any child starts: a taken port leaves nothing behind
            server = create_server(app, host=host, port=port, threads=threads)
        except OSError as exc:
            _fail(f"Cannot listen on {host}:{port}: {exc.strerror or exc}. Stop what uses "
                  "it, or choose another port with --port or SMSOPS_PORT.")
        if created:
            click.secho(f"Root user: {created[0]}  one-time password: {created[1]}",
                        fg="yellow")
            click.echo("You will choose your own password at first login.")

        if not os.environ.get("SMSOPS_BASE_URL"):  # links in notifications: this address
            served = f"http://{host}:{port}"
            (Path(app.config["INSTANCE_DIR"]) / SERVING_URL).write_text(served + "\n")
            app.config["BASE_URL"] = served
        env = dict(os.environ)
        env.update(SMSOPS_REDIS_URL=app.config["REDIS_URL_RESOLVED"],
                   SMSOPS_DATABASE_URL=app.config["DATABASE_URL"],
                   SMSOPS_INSTANCE_DIR=app.config["INSTANCE_DIR"])
        children.start([sys.executable, "-m", "app.cli", "worker"], env)
        # Receipts and replies: on their own SMPP bind, or pulled from Tencent Cloud.
        follower = {"smpp": "smpp-listen", "tencentcloud": "tencentcloud-poll"}.get(
            app.config.get("GATEWAY", "simulator"))
        if follower:
            children.start([sys.executable, "-m", "app.cli", follower], env)
        click.echo(f"smsops is running at http://{host}:{port}  (Ctrl-C stops it)")
        freeze_heap()
        server.run()
    except KeyboardInterrupt:
        pass  # (waitress returns from run() on it too)
    finally:
        # A second signal must not cut the stop short: it is bounded by the timeout.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        click.echo("Stopping…")
        if server is not None:
            # Requests in flight end first: a request thread that finishes after
            # close() wakes the loop by writing to the closed trigger's descriptor,
            # which may belong to another socket by then (Redis, below).
            server.task_dispatcher.shutdown()
            server.close()
        children.stop()
        shutdown_embedded()
        children.release_guard()
        lock.release()


@cli.command("worker")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--no-fork", is_flag=True, default=None,
              help="Run jobs in this process (keeps connections and compiled statements); "
                   "default: SMSOPS_WORKER_NO_FORK, else fork per job.")
def worker_command(burst: bool, no_fork: bool | None) -> None:
    """Run one RQ worker with the scheduler, and the pipeline's sweeper."""
    from jobs.worker import run

    die_with_supervisor()
    forks_die_with_us()  # its work-horses and scheduler end with it
    try:
        run(current_app._get_current_object(), burst=burst,  # type: ignore[attr-defined]
            no_fork=no_fork or None)
    finally:
        shutdown_embedded()


@cli.command("slack-socket")
def slack_socket_command() -> None:
    """Run the Slack bot over Socket Mode: no public URL needed."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    bolt = current_app.extensions.get("slack")
    token = current_app.config.get("SLACK_APP_TOKEN")
    if bolt is None or not token:
        _fail("Set SMSOPS_SLACK_BOT_TOKEN and SMSOPS_SLACK_APP_TOKEN (an xapp- token with "
              "connections:write) to use Socket Mode.")
    click.echo("Connecting to Slack over Socket Mode (Ctrl-C stops it)…")
    try:
        SocketModeHandler(bolt, token).start()
    finally:
        shutdown_embedded()


@cli.command("smpp-listen")
def smpp_listen_command() -> None:
    """Hold a receiver bind to the SMPP carrier for delivery receipts and replies."""
    from jobs.listeners import smpp_listener

    if current_app.config.get("GATEWAY") != "smpp":
        _fail("Set SMSOPS_GATEWAY=smpp and the SMSOPS_SMPP_* settings first.")
    die_with_supervisor()
    listener = smpp_listener(current_app._get_current_object())  # type: ignore[attr-defined]

    def _stop(_signum: int, _frame: Any) -> None:
        exit_after(float(current_app.config["SHUTDOWN_TIMEOUT"]))  # a stop never hangs
        # Noticed within half a second, then flushed and unbound. Raising here instead
        # could land inside the bind handshake, and leave without an unbind.
        listener.stop()

    signal.signal(signal.SIGTERM, _stop)
    click.echo("Listening for receipts and replies (Ctrl-C stops it)…")
    try:
        listener.run()
    except KeyboardInterrupt:
        listener.stop()
    finally:
        shutdown_embedded()


@cli.command("tencentcloud-poll")
@click.option("--every", default=30.0, show_default=True, help="Seconds between pulls.")
def tencentcloud_poll_command(every: float) -> None:
    """Pull receipts and replies from Tencent Cloud SMS, forever."""
    import time

    from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
        TencentCloudSDKException,
    )

    from jobs.listeners import tencentcloud_poll_once

    if current_app.config.get("GATEWAY") != "tencentcloud":
        _fail("Set SMSOPS_GATEWAY=tencentcloud and the SMSOPS_TENCENTCLOUD_* settings first.")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    die_with_supervisor()

    def _stop(_signum: int, _frame: Any) -> None:
        exit_after(float(app.config["SHUTDOWN_TIMEOUT"]))  # a stop never hangs
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        while True:
            try:
                tencentcloud_poll_once(app)
            except TencentCloudSDKException as exc:
                click.echo(f"Tencent Cloud pull failed: {exc.get_code()}", err=True)
            time.sleep(every)
    except KeyboardInterrupt:
        pass
    finally:
        shutdown_embedded()


# --- db ---------------------------------------------------------------------------

@cli.group("db")
def db_group() -> None:
    """Database schema (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    migrate.upgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"Database at {revision}.")


@db_group.command("revision")
@click.option("-m", "--message", required=True)
def db_revision(message: str) -> None:
    """Autogenerate a migration from the models (for developers)."""
    migrate.revision(current_app.config["DATABASE_URL"], message)


@cli.group("secrets")
def secrets_group() -> None:
    """The key that encrypts AppKeys at rest."""


@secrets_group.command("new-key")
def secrets_new_key() -> None:
    """Print a fresh encryption key (for SMSOPS_ENCRYPTION_KEY or the key file)."""
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())


@secrets_group.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every stored secret with the first key; old keys may go afterwards."""
    from app.encryption import reencrypt_all

    migrate.upgrade(current_app.config["DATABASE_URL"])
    count = reencrypt_all(current_app.extensions["db"].engine)
    click.echo(f"Re-encrypted {count} AppKey(s) with the current key.")


# --- users ------------------------------------------------------------------------

@cli.group("user")
def user_group() -> None:
    """Users."""


@user_group.command("create")
@click.option("--email", required=True)
@click.option("--root", is_flag=True, help="Give all rights.")
@click.option("--name", default="")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_create(email: str, root: bool, name: str, password_stdin: bool) -> None:
    """Create a user; prints a one-time password unless one is given."""
    from app.services.users import bootstrap_user

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    migrate.upgrade(current_app.config["DATABASE_URL"])
    try:
        with current_app.extensions["db"].unit_of_work() as session:
            account = ensure_account(session)
            user, generated = bootstrap_user(session, account, email, password, root=root,
                                             name=name)
    except ServiceError as exc:
        _fail(exc.message)
    click.echo(f"Created {'root ' if root else ''}user {user.email}.")
    if generated:
        click.echo(f"One-time password: {generated}")


# --- applications -------------------------------------------------------------------

@cli.group("app")
def app_group() -> None:
    """Applications."""


@app_group.command("create")
@click.option("--name", required=True)
@click.option("--overview", default="")
def app_create(name: str, overview: str) -> None:
    """Create an application; prints its SDK AppID and AppKey."""
    try:
        app, key = _as_operator(
            lambda ctx: app_service.create_app(ctx, name=name, overview=overview))
    except ServiceError as exc:
        _fail(exc.message)
    click.echo(f"AppID: {app.sdk_app_id}\nAppKey: {key}")


# --- simulator ---------------------------------------------------------------------

@cli.group("simulator")
def simulator_group() -> None:
    """The simulator gateway."""


@simulator_group.command("reply")
@click.option("--from", "sender", required=True, help="The number that replies.")
@click.argument("text")
def simulator_reply(sender: str, text: str) -> None:
    """Pretend a recipient replied (opt-out words unsubscribe them)."""
    from app.services import replies
    from app.sms.numbers import NumberError

    if current_app.config.get("GATEWAY", "simulator") != "simulator":
        _fail("Replies can be injected only while the simulator gateway is in use.")
    try:
        reply = _as_operator(lambda ctx: replies.receive(ctx, sender, text))
    except NumberError as exc:
        _fail(str(exc))
    click.echo(f"Reply from {reply.phone_number} stored"
               + ("; the number is now unsubscribed." if reply.unsubscribed else "."))


# --- sms ------------------------------------------------------------------------------

@click.group("sms", cls=click.Group)
def sms_group() -> None:
    """Message rules, without a database."""


@sms_group.command("count")
@click.option("--region", type=click.Choice(["mainland", "international"]),
              default="mainland", show_default=True)
@click.option("--sign", default=None, help="Signature text, without brackets.")
@click.option("--json", "as_json", is_flag=True)
@click.argument("text")
def sms_count(region: str, sign: str | None, as_json: bool, text: str) -> None:
    """Encoding, characters, parts and billed items of TEXT as it would be sent."""
    from app.sms.text import count

    result = count(text, region, sign)
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    click.echo(f"{result.encoding}, {result.characters} characters, "
               f"{result.billed_items} part(s) = {result.billed_items} billed item(s)")
    for n, part in enumerate(result.parts, start=1):
        click.echo(f"  part {n}: {part!r}")


cli.add_command(sms_group)


from app.cli_tasks import task_group  # noqa: E402 - its own module (issue #10)

cli.add_command(task_group)


# --- demo ---------------------------------------------------------------------------

@cli.command("demo")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def demo_command(as_json: bool) -> None:
    """Seed (idempotently) a demo account a new user can explore."""
    from app import demo

    made = _as_operator(demo.seed)
    if as_json:
        click.echo(json.dumps(made))
        return
    click.echo(f"Demo application {made['app_name']}: AppID {made['app_id']}")
    click.echo(f"AppKey: {made['app_key']}")
    for line in made["notes"]:
        click.echo(f"- {line}")


if __name__ == "__main__":
    cli()
