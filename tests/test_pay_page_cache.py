"""The open pay page's rendered-HTML cache (views/pay.py OpenPages) and the genuine-token cache
(links.read_token): a page from the cache is the page a fresh render gives, with this response's
own CSRF token, CSP nonce and attempt key; never another link's page, never a stale state."""

import re
from datetime import timedelta

import pytest
import time_machine

from payapp import links
from payapp.db import get_session
from payapp.models import PaymentLink

from .conftest import csrf_from, open_pay_page, submit_card

NONCE_ATTR = re.compile(r'nonce="([^"]+)"')
ATTEMPT = re.compile(r'id="attempt-key" value="([^"]+)"')
PER_RESPONSE = re.compile(r'(nonce|content|value)="[^"]*"')


def pages(app):
    return app.extensions["payapp.open_pages"].pages


def header_nonce(response) -> str:
    return re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"])[1]


def test_a_cached_page_is_byte_for_byte_a_fresh_render_but_for_its_per_response_values(
    app, link_factory
):
    link = link_factory()
    first = app.test_client().get(link.path)  # marks the link viewed, then renders
    pages(app).clear()
    fresh = app.test_client().get(link.path)
    assert len(pages(app)) == 1
    cached = app.test_client().get(link.path)
    assert len(pages(app)) == 1  # served from the cache
    assert first.status_code == fresh.status_code == cached.status_code == 200
    assert PER_RESPONSE.sub("", cached.text) == PER_RESPONSE.sub("", fresh.text)
    assert PER_RESPONSE.sub("", cached.text) == PER_RESPONSE.sub("", first.text)  # the ORM path
    assert "\x00" not in cached.text
    for name in ("Content-Security-Policy", "Cache-Control", "Vary", "Content-Type"):
        assert cached.headers[name].replace(header_nonce(cached), "") == fresh.headers[
            name
        ].replace(header_nonce(fresh), ""), name


def test_every_response_gets_its_own_nonce_csrf_token_and_attempt_key(app, link_factory):
    link = link_factory()
    app.test_client().get(link.path)
    seen = {"nonce": set(), "csrf": set(), "attempt": set()}
    for _ in range(3):  # three new visitors, the last two served from the cache
        response = app.test_client().get(link.path)
        nonces = set(NONCE_ATTR.findall(response.text))
        assert nonces == {header_nonce(response)}  # the page's scripts carry the header's nonce
        csrf = set(re.findall(r'name="csrf_token" value="([^"]+)"', response.text))
        csrf.add(re.search(r'<meta name="csrf-token" content="([^"]+)"', response.text)[1])
        assert len(csrf) == 1
        seen["nonce"] |= nonces
        seen["csrf"] |= csrf
        seen["attempt"].add(ATTEMPT.search(response.text)[1])
    assert all(len(values) == 3 for values in seen.values()), seen


def test_a_visitor_can_pay_with_the_token_and_key_of_a_cached_page(app, client, link_factory):
    link = link_factory()
    app.test_client().get(link.path)
    app.test_client().get(link.path)  # now cached
    page = open_pay_page(client, link.path)
    response = submit_card(client, link.path, page=page)
    assert response.status_code == 200 and "Payment received" in response.text


def test_a_cached_page_never_shows_another_links_data(app, link_factory):
    jane = link_factory()
    omar = link_factory(patient_name="Omar Ruiz", amount="80.50", reference="INV-2002")
    for _ in range(2):
        for link, mine, theirs in (
            (jane, ("Hi Jane,", "$125.00", "INV-1001"), ("Omar", "$80.50", "INV-2002")),
            (omar, ("Hi Omar,", "$80.50", "INV-2002"), ("Jane", "$125.00", "INV-1001")),
        ):
            html = app.test_client().get(link.path).text
            assert all(text in html for text in mine)
            assert not any(text in html for text in theirs)
            assert f'action="{link.path}"' in html


def test_a_link_that_changed_is_never_served_from_the_cache(app, client, link_factory):
    link = link_factory()
    for _ in range(2):
        assert client.get(link.path).status_code == 200
    with app.app_context():
        row = get_session().get(PaymentLink, link.id)
        row.status = "cancelled"
        get_session().commit()
    response = client.get(link.path)
    assert response.status_code == 410 and "was cancelled" in response.text


def test_an_open_page_past_its_expiry_is_not_served_from_the_cache(client, link_factory):
    link = link_factory(expires_in_days="1")
    for _ in range(2):
        assert 'id="pay-form"' in client.get(link.path).text
    with time_machine.travel(timedelta(days=1, minutes=1)):
        response = client.get(link.path)
    assert response.status_code == 410 and "has expired" in response.text
    assert 'id="pay-form"' not in response.text


def test_stopping_reminders_shows_its_message_once_and_the_page_without_the_button(
    app, client, link_factory
):
    link = link_factory()
    with app.app_context():
        row = get_session().get(PaymentLink, link.id)
        row.sent_at = row.created_at
        get_session().commit()
    for _ in range(2):
        html = client.get(link.path).text
        assert "Don't remind me" in html
    stopped = client.post(
        f"{link.path}/reminders/stop",
        data={"csrf_token": csrf_from(html)},
        headers={"Referer": f"https://localhost{link.path}"},
        follow_redirects=True,
    )
    assert "won&#39;t send you reminders" in stopped.text
    assert "Don't remind me" not in stopped.text
    again = client.get(link.path).text
    assert "won&#39;t send you reminders" not in again and "Don't remind me" not in again


def test_a_genuine_token_is_read_once_and_other_spellings_stay_refused(app, link_factory):
    link = link_factory()
    secret = app.config["SECRET_KEY"]
    assert links.read_token(secret, link.token) == links.read_token(secret, link.token)
    assert links.read_token(secret, link.token)[0] == link.public_id
    assert links.read_token("another key", link.token) is None
    payload, _, signature = link.token.rpartition(".")
    for variant in (link.token + "=", payload + "." + signature[:-1] + "A", link.token[:-1]):
        if variant != link.token:
            assert links.read_token(secret, variant) is None
            assert app.test_client().get(f"/pay/{variant}").status_code == 404


def test_the_row_lookup_finds_what_resolve_token_finds_and_refuses_what_it_refuses(
    app, link_factory
):
    link = link_factory()
    secret = app.config["SECRET_KEY"]
    engine = app.extensions["payapp.engine"]
    with app.app_context():
        model = links.resolve_token(get_session(), link.token, secret)
        row = links.find_link_row(engine, link.token, secret)
        assert (row.id, row.public_id, row.status) == (model.id, model.public_id, model.status)
        assert row.expires_at == model.expires_at and row.expires_at.tzinfo is not None
        for forged in ("", "x" * 201, link.token[:-2] + "xx", "not-a-token"):
            assert links.find_link_row(engine, forged, secret) is None
        model.expires_at += timedelta(days=1)  # the token no longer names the link's expiry
        get_session().commit()
        assert links.find_link_row(engine, link.token, secret) is None
    assert app.test_client().get(link.path).status_code == 404


@pytest.mark.parametrize("choice", [None, "es", "en", "xx"])
@pytest.mark.parametrize("link_language", ["en", "es"])
def test_a_kept_pages_language_is_the_language_the_page_is_shown_in(
    app, link_factory, choice, link_language
):
    from flask import session

    from payapp import i18n

    made = link_factory(language=link_language)
    engine = app.extensions["payapp.engine"]
    row = links.find_link_row(engine, made.path.rsplit("/", 1)[1], app.config["SECRET_KEY"])
    with app.test_request_context(made.path):
        app.preprocess_request()
        if choice is not None:
            session[i18n.CHOICE_KEY] = choice
        i18n.use_link_language(row.language)
        key = app.extensions["payapp.open_pages"].key(made.path, row, "open")
        assert key[2] == i18n.patient_language().value
