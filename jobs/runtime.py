"""One Flask app per worker process, built before RQ forks its work horses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from sqlalchemy.orm import Session

_app: Flask | None = None


def use(app: Flask) -> None:
    global _app
    _app = app
    # A forked work horse must not share the parent's database connections.
    engine = app.extensions["db"].engine
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))


def app() -> Flask:
    global _app
    if _app is None:
        from app import create_app

        use(create_app())
    assert _app is not None
    return _app


@contextmanager
def unit_of_work() -> Iterator[Session]:
    flask_app = app()
    with flask_app.app_context(), flask_app.extensions["db"].unit_of_work() as session:
        yield session
