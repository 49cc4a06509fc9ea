"""/api/docs: the OpenAPI document of both APIs, rendered by Redoc.

Redoc (redoc.standalone.js, MIT, maintained by Redocly) is vendored from the npm
registry into app/static/vendor (`make vendor`, which also replaces its one CDN
reference, a logo, with an inline image), never loaded from a CDN. It was
chosen because it is one self-contained file with no runtime fetches beyond the
document, and it only renders: it has no "try it" console, which could not sign
requests anyway. Signed-in console users only, like every console page."""

from __future__ import annotations

from flask import Blueprint, render_template, url_for
from werkzeug.wrappers import Response

bp = Blueprint("api_docs", __name__)

# Redoc runs its search index in a Web Worker it creates from a blob: URL.
CSP = ("default-src 'self'; script-src 'self' blob:; worker-src 'self' blob:; "
       "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:")


@bp.get("/api/docs")
def reference() -> Response:
    resp = Response(render_template("api_docs.html",
                                    spec_url=url_for("api.openapi"),
                                    script=url_for("static",
                                                   filename="vendor/redoc.standalone.js")),
                    mimetype="text/html")
    resp.headers["Content-Security-Policy"] = CSP
    return resp
