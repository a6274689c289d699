"""Shared by the attack suite: a paid link, database snapshots, and an HTML checker that tells
markup a browser would run from text it would only show. (Admins: tests/conftest.py's `admin`.)"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from sqlalchemy import inspect, text

from payapp.db import get_session
from payapp.models import StaffUser

from ..conftest import STAFF_EMAIL, submit_card

CLINIC_PHONE = "(212) 555-0100"  # tests/conftest.py's CLINIC_PHONE


def staff_user_id(app, email: str = STAFF_EMAIL) -> int:
    with app.app_context():
        return get_session().query(StaffUser).filter_by(email=email).one().id


@pytest.fixture
def paid_link(client, link_factory):
    """A link the patient has paid (one completed payment, refundable)."""
    link = link_factory()
    response = submit_card(client, link.path)
    assert "Payment received" in response.text
    return link


# --- the database -------------------------------------------------------------------------------


def snapshot(app) -> dict[str, list[tuple]]:
    """Every row of every table: equal snapshots mean a request changed nothing at all."""
    with app.app_context(), app.extensions["payapp.engine"].connect() as conn:
        tables = [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
        # The table names come from the schema itself, not from input.
        return {
            t: [tuple(r) for r in conn.execute(text(f'SELECT * FROM "{t}" ORDER BY 1'))]
            for t in tables
        }


def counts(app) -> dict[str, int]:
    return {table: len(rows) for table, rows in snapshot(app).items()}


# --- HTML ---------------------------------------------------------------------------------------

# Where our pages may load scripts from: our static files, and Square's SDK on the pay page.
SCRIPT_SOURCES = (
    "/static/js/",
    "/assets/js/",
    "https://sandbox.web.squarecdn.com/",
    "https://web.squarecdn.com/",
    "https://pay.google.com/",
)
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "srcdoc", "poster"}
ACTIVE_TAGS = {"iframe", "frame", "frameset", "object", "embed", "applet", "base", "img", "style"}


class _Markup(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    handle_startendtag = handle_starttag


def unsafe_markup(html: str) -> list[str]:
    """What in this HTML a browser would run or load that our templates never produce: scripts
    from elsewhere, event-handler attributes, javascript: URLs, frames, objects, images."""
    parser = _Markup()
    parser.feed(html)
    parser.close()
    problems = []
    for tag, attrs in parser.tags:
        values = dict(attrs)
        if tag == "script" and not (values.get("src") or "").startswith(SCRIPT_SOURCES):
            problems.append(f"<script {attrs}>")
        if tag in ACTIVE_TAGS:
            problems.append(f"<{tag} {attrs}>")
        if tag == "meta" and (values.get("http-equiv") or "").lower() == "refresh":
            problems.append(f"<meta refresh {attrs}>")
        for name, value in attrs:
            if name.startswith("on"):
                problems.append(f"<{tag} {name}={value!r}>")
            scheme = re.sub(r"[\s\x00-\x1f]", "", (value or "")).lower()
            if name in URL_ATTRIBUTES and scheme.startswith(("javascript:", "vbscript:", "data:")):
                problems.append(f"<{tag} {name}={value!r}>")
    return problems


def assert_escaped(html: str, payloads, where: str) -> None:
    """No payload made it into the markup as markup."""
    problems = unsafe_markup(html)
    assert not problems, f"{where}: unescaped markup {problems[:5]}"
    for payload in payloads:
        if set(payload) & set("<>\"'"):
            # Escaping changes each of these characters: seen verbatim, it was not escaped.
            assert payload not in html, f"{where}: {payload!r} appears unescaped"
    assert "1787569" not in html, f"{where}: a template expression was evaluated"


NONCE_OR_TOKEN = re.compile(
    r"(nonce=\"|'nonce-|name=\"csrf-token\" content=\"|name=\"csrf_token\"[^>]*value=\")"
    r"[^\"']*"
)


def normalized(html: str) -> str:
    """A page without its per-response values (CSP nonce, CSRF token)."""
    return NONCE_OR_TOKEN.sub(r"\1*", html)
