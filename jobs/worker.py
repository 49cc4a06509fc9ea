"""Runs an RQ worker (with RQ's scheduler) for this app."""

from __future__ import annotations

from flask import Flask
from rq import Worker

from app.queue import QUEUE_NAMES
from app.supervise import stop_within
from jobs import runtime


def run(app: Flask, *, burst: bool = False) -> bool:
    runtime.use(app)
    worker = Worker(list(QUEUE_NAMES), connection=app.extensions["redis"])
    stop_within(worker, float(app.config.get("SHUTDOWN_TIMEOUT", 10)))  # app/supervise.py
    return worker.work(with_scheduler=True, burst=burst, logging_level="INFO")
