"""WSGI entry point: `gunicorn wsgi:app` or `granian --interface wsgi wsgi:app`."""

from app import create_app
from app.supervise import freeze_heap

app = create_app()
freeze_heap()  # the app lives as long as the server's worker process
