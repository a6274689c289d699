"""Issue 10, fifth round: the pay page served with payapp's faster pieces (PayResponse, the
session cookies, the CSRF hook, the kept pages) is the page and headers Flask's, werkzeug's and
flask-wtf's stock pieces give, for every state a patient can find a link in. Only the values
made fresh for each response (the CSP nonce, the CSRF token, the attempt key, the cookie's
signed value) differ."""

import re
from datetime import timedelta

import pytest
import time_machine
from flask import Response
from flask.sessions import SecureCookieSessionInterface

from .conftest import submit_card
from .test_partial_payment_pages import pay

FRESH = [
    (re.compile(r"'nonce-[^']+'"), "'nonce-N'"),
    (re.compile(r'nonce="[^"]+"'), 'nonce="N"'),
    (re.compile(r'(name="csrf-token" content=")[^"]+'), r"\1T"),
    (re.compile(r'(name="csrf_token" value=")[^"]+'), r"\1T"),
    (re.compile(r'(id="attempt-key" value=")[^"]+'), r"\1K"),
    (re.compile(r"(session=)[^;]+"), r"\1S"),
]


def normalized(response) -> tuple:
    def clean(text: str) -> str:
        for pattern, replacement in FRESH:
            text = pattern.sub(replacement, text)
        return text

    headers = [(name, clean(value)) for name, value in response.headers.items()]
    return response.status_code, headers, clean(response.get_data(as_text=True))


def stock_pieces(app, monkeypatch):
    """The app with Flask's own Response and session interface in place of payapp's."""
    monkeypatch.setattr(app, "response_class", Response)
    monkeypatch.setattr(app, "session_interface", SecureCookieSessionInterface())


def make_state(app, client, link_factory, state):
    if state == "open":
        link = link_factory()
    elif state == "part allowed":
        link = link_factory(amount="200.00", min_payment="50")
    elif state == "part paid":
        link = link_factory(amount="200.00", min_payment="50")
        pay(client, link.path, "other", "50")
    elif state == "paid":
        link = link_factory()
        submit_card(client, link.path).close()
    elif state == "spanish":
        link = link_factory(language="es")
    else:
        link = link_factory(expires_in_days="1")
    client.get(link.path)  # the first view records link.viewed (and renders without the cache)
    return link


STATES = ["open", "part allowed", "part paid", "paid", "spanish", "expired"]


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("query", ["", "?lang=es"])
def test_a_new_visitor_gets_the_page_and_headers_flasks_own_pieces_give(
    app, client, link_factory, monkeypatch, state, query
):
    link = make_state(app, client, link_factory, state)
    later = timedelta(days=2) if state == "expired" else timedelta(0)
    with time_machine.travel(later):
        ours = [normalized(app.test_client().get(link.path + query)) for _ in range(2)]
        with monkeypatch.context() as patch:
            stock_pieces(app, patch)
            stock = [normalized(app.test_client().get(link.path + query)) for _ in range(2)]
    assert ours[0] == ours[1]  # rendered, then from the kept page
    assert ours == stock
    assert ours[0][0] == (303 if query else {"expired": 410}.get(state, 200))


@pytest.mark.parametrize(
    "value", ["", "abc-_.09XYZ", "a<b", '"x"', "it's", "&amp;", "ñ", "a b", "x\n", "<script>"]
)
def test_a_filled_value_is_escaped_as_jinja_escapes_it(value):
    from markupsafe import escape

    from payapp.views.pay import escaped

    assert escaped(value) == str(escape(value))
