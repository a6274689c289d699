"""One template answers both a full page and an htmx fragment (a named block of that page)."""

from __future__ import annotations

from flask import make_response, render_template, request
from jinja2_fragments.flask import render_block


def is_htmx_request() -> bool:
    # A history restore wants the whole page, not the fragment.
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def render(template: str, block: str | None = None, *, status_code: int = 200, **context):
    """The page, or only ``block`` of it for htmx; always ``Vary: HX-Request``."""
    if block and is_htmx_request():
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    response = make_response(body, status_code)
    response.vary.add("HX-Request")
    return response
