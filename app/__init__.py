"""smsops: the Flask application factory."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from app import config as cfg
from app import encryption, gateways
from app.db import Database
from app.redisconn import connect, redis_url
from app.services import sendconfig
from app.services.values import MAX_ID

log = logging.getLogger("smsops")
csrf = CSRFProtect()
login_manager = LoginManager()


class ConsoleSessions(SecureCookieSessionInterface):
    """Cookie sessions for the console's pages; none for the HTTP API, which is signed
    with keys and never reads or sets a cookie (opening one showed in every send
    request's profile). Its requests get Flask's null session."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        from app.api import under_api

        if under_api(request.path):
            return None
        return super().open_session(app, request)


class RecordId(IntegerConverter):
    """`<int:...>` in every route: an id past the 32-bit ids names nothing, so the view
    gets -1, which no row has (its own 404), instead of a number that overflows in the
    database (a 500). Checked before int(): 5,000 digits is an error of its own."""

    def to_python(self, value: str) -> Any:
        if len(value) > len(str(MAX_ID)) or int(value) > MAX_ID:
            return -1
        return super().to_python(value)


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    # Whatever we write (database, WAL, uploads, outbox, Redis dump and socket, keys)
    # is for our user only; children and the embedded Redis inherit this.
    os.umask(0o077)
    flask_app = Flask(__name__, template_folder=str(cfg.ROOT / "templates"))
    flask_app.url_map.converters["int"] = RecordId  # before any route is added
    flask_app.session_interface = ConsoleSessions()
    # The instance folder decides the other defaults, so it is read first.
    instance = cfg.instance_dir(
        {"INSTANCE_DIR": (overrides or {}).get("INSTANCE_DIR")
         or os.environ.get("SMSOPS_INSTANCE_DIR")}
    )
    flask_app.config.update(cfg.defaults(instance))
    flask_app.config.from_prefixed_env("SMSOPS")
    if overrides:
        flask_app.config.update(overrides)
    instance = cfg.instance_dir(flask_app.config)
    flask_app.permanent_session_lifetime = timedelta(
        seconds=int(flask_app.config["SESSION_IDLE_SECONDS"]))
    cfg.check(flask_app.config)
    if not flask_app.config.get("SECRET_KEY"):
        flask_app.config["SECRET_KEY"] = cfg.secret_key(instance)
    if not flask_app.config.get("BASE_URL"):  # where `smsops run` serves, if it has
        flask_app.config["BASE_URL"] = cfg.serving_url(instance)
    encryption.configure(flask_app.config)

    flask_app.extensions["db"] = Database(flask_app.config["DATABASE_URL"])
    url = redis_url(flask_app.config)
    flask_app.config["REDIS_URL_RESOLVED"] = url
    flask_app.extensions["redis"] = connect(url)
    flask_app.extensions["gateway"] = gateways.build(flask_app.config)
    flask_app.extensions["send_config"] = sendconfig.install(
        flask_app.extensions["db"], flask_app.extensions["redis"],
        float(flask_app.config["CONFIG_CACHE_TTL_S"]))

    Htmx(flask_app)
    csrf.init_app(flask_app)
    login_manager.init_app(flask_app)

    from app.web import register

    register(flask_app)

    from app import api
    from bot import app as slack_app
    from bot import web as slack_web

    flask_app.register_blueprint(api.bp)
    csrf.exempt(api.bp)  # signed with the AppKey instead of a session
    from app.api.fastpath import SendFastPath

    flask_app.wsgi_app = SendFastPath(  # type: ignore[method-assign]
        flask_app, flask_app.wsgi_app)  # the send endpoint, without Flask's machinery
    from app.api import docs as api_docs
    from app.web import api_keys as api_key_pages

    flask_app.register_blueprint(api_docs.bp)  # /api/docs, a console page
    flask_app.register_blueprint(api_key_pages.bp)  # SecretId/SecretKey pairs

    @flask_app.errorhandler(encryption.EncryptionKeyError)
    def _wrong_key(exc: encryption.EncryptionKeyError) -> tuple[Any, int]:
        # A setup fault the operator must fix: said plainly, without a stack trace.
        log.error("%s", exc)
        return "This server cannot read its stored keys; the operator has been told why.", 503

    flask_app.extensions["slack"] = slack_app.build(flask_app)
    flask_app.register_blueprint(slack_web.bp)
    csrf.exempt(slack_web.bp)  # Slack signs its requests instead
    proxies = int(flask_app.config.get("TRUSTED_PROXIES") or 0)
    if proxies > 0:  # otherwise X-Forwarded-* is anyone's to forge, so it is ignored
        flask_app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            flask_app.wsgi_app, x_for=proxies, x_proto=proxies)
    return flask_app
