"""Several app servers, one PostgreSQL database: the money rules hold across processes.

Two gunicorn servers (separate processes, two ports) share one PostgreSQL database, one Redis
for the rate limits, and one bank: the Square stand-in, which both reach through the real
``squareup`` SDK, so what reached "the bank" is counted in one place. Many patients' browsers
(threads with their own cookies) hit one link from both servers at once:

* everyone pays at once: exactly one charge reaches the bank, and the link is paid once;
* declined cards from both servers: exactly MAX_DECLINES (5) attempts reach the bank, then the
  link is locked;
* staff on both servers refund the same payment at once: the refunds never add up to more than
  was paid, in the database or at the bank.

The database is the leg's PostgreSQL (PAYAPP_TEST_DATABASE_URL) or, run alone, a private one
started here (tests/support/postgres.py).
"""

from __future__ import annotations

import http.cookiejar
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from payapp.models import Payment, PaymentLink, Refund

from ..support import postgres
from ..support.servers import (
    create_link_url,
    free_port,
    payapp_env,
    run_flask,
    running_gunicorn,
    running_standin,
    square_mode_env,
)
from .test_redis_limits import _redis_server

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]

TOKEN, LOCATION = "standin-token", "LSTANDIN1"
STAFF_EMAIL, STAFF_PASSWORD = "desk@clinic.example.com", "a long enough password 42"
MAX_DECLINES = 5
PATIENTS = 12  # browsers racing, half on each server
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
ATTEMPT = re.compile(r'name="attempt_key" id="attempt-key" value="([^"]+)"')
REFUND_FORM = re.compile(
    r'name="payment_id" value="(\d+)">\s*<input type="hidden" name="refund_key" value="([^"]+)"'
)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory) -> Iterator[str]:
    """The leg's PostgreSQL server, or a private one for this module."""
    url = postgres.test_server_url()
    if url:
        yield url
        return
    server = postgres.start_postgres()
    try:
        yield server.url()
    finally:
        server.stop()


class Browser:
    """One browser: its own cookies, no redirects followed (we read the 303s)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        cookies = urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        self.opener = urllib.request.build_opener(cookies, NoRedirect)

    def request(self, path: str, data: dict | None = None, headers=None) -> tuple[int, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base_url + path, data=body, headers=headers or {})  # noqa: S310
        try:
            with self.opener.open(req, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")


@dataclass
class TwoServers:
    urls: tuple[str, str]
    env: dict[str, str]
    database_url: str
    standin: object

    def new_link(self, amount: str = "125.00") -> str:
        """A link made with the CLI; its path (/pay/<token>)."""
        pay_url = create_link_url(
            self.env, self.urls[0], "--amount", amount, "--name", "Jane Doe", "--email",
            "jane@example.com",
        )  # fmt: skip
        return urllib.parse.urlsplit(pay_url).path

    def browsers(self, count: int) -> list[Browser]:
        """``count`` browsers, alternating between the two servers."""
        return [Browser(self.urls[i % 2]) for i in range(count)]

    def rows(self, model, **where) -> list:
        engine = create_engine(self.database_url, poolclass=NullPool)
        try:
            with Session(engine) as session:
                return list(session.scalars(select(model).filter_by(**where)))
        finally:
            engine.dispose()


@pytest.fixture
def two_servers(server_url, tmp_path: Path) -> Iterator[TwoServers]:
    """Two gunicorn servers (one process and 4 threads each) on one PostgreSQL database, one
    Redis and one Square stand-in. Both share the instance folder (so the same secret key)."""
    with ExitStack() as stack:
        standin = stack.enter_context(running_standin(TOKEN, LOCATION))
        redis_url = stack.enter_context(_redis_server(tmp_path))
        ports = free_port(), free_port()
        urls = tuple(f"http://127.0.0.1:{port}" for port in ports)
        database_url = postgres.create_database(server_url, prefix="two")
        stack.callback(postgres.drop_database, database_url)
        env = payapp_env(
            tmp_path,
            urls[0],
            PAYAPP_DATABASE_URL=database_url,
            PAYAPP_SECRET_KEY="two-servers-test-secret-key-0123456789abcdef",
            PAYAPP_RATELIMIT_STORAGE_URI=redis_url,
            PAYAPP_RATELIMIT_PAY_SUBMIT="1000 per minute",
            PAYAPP_RATELIMIT_PAY_VIEW="1000 per minute",
            PAYAPP_RATELIMIT_LOGIN="1000 per minute",
            PAYAPP_MAX_DECLINES=str(MAX_DECLINES),
            **square_mode_env(standin, application_id="sandbox-sq0idb-two-servers"),
        )
        run_flask(env, "init-db")
        for i, port in enumerate(ports):
            stack.enter_context(running_gunicorn(env, port, tmp_path / f"gunicorn-{i}.log"))
        yield TwoServers(urls, env, database_url, standin)


def all_at_once(browsers: list, action) -> list:
    """Run ``action(browser)`` in one thread per browser, released together; the results."""
    start = threading.Barrier(len(browsers))
    results: list = [None] * len(browsers)

    def run(i: int) -> None:
        start.wait()
        results[i] = action(browsers[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(browsers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def open_page(browser: Browser, path: str) -> dict:
    status, html = browser.request(path)
    assert status == 200, (status, html[:500])
    return {"csrf_token": CSRF.search(html)[1], "attempt_key": ATTEMPT.search(html)[1]}


def pay(browser: Browser, path: str, form: dict, nonce: str) -> int:
    data = {**form, "source_id": nonce, "postal_code": "94103"}
    status, _ = browser.request(path, data, headers={"HX-Request": "true"})
    return status


def test_patients_paying_one_link_on_both_servers_at_once_are_charged_exactly_once(two_servers):
    path = two_servers.new_link("125.00")
    browsers = two_servers.browsers(PATIENTS)
    forms = [open_page(b, path) for b in browsers]

    statuses = all_at_once(
        list(zip(browsers, forms, strict=True)),
        lambda bf: pay(bf[0], path, bf[1], "cnon:card-nonce-ok"),
    )

    assert all(s is not None and s < 500 for s in statuses), statuses
    assert len(two_servers.standin.charges) == 1
    [link] = two_servers.rows(PaymentLink)
    assert link.status == "paid"
    assert [p.amount_cents for p in two_servers.rows(Payment, status="completed")] == [12500]


def test_declines_from_both_servers_stop_at_the_cap_and_lock_the_link(two_servers):
    path = two_servers.new_link("80.00")
    # Rounds of simultaneous declined cards until the link refuses the card form; the claim
    # lets one attempt at a time through, so a round may bring only one decline.
    for _ in range(4 * MAX_DECLINES):
        browsers = two_servers.browsers(PATIENTS)
        pages = [b.request(path) for b in browsers]
        forms = [
            {"csrf_token": CSRF.search(html)[1], "attempt_key": ATTEMPT.search(html)[1]}
            for _, html in pages
            if ATTEMPT.search(html)
        ]
        if not forms:
            break
        all_at_once(
            list(zip(browsers, forms, strict=False)),
            lambda bf: pay(bf[0], path, bf[1], "cnon:card-nonce-declined"),
        )

    [link] = two_servers.rows(PaymentLink)
    assert (link.status, link.decline_count) == ("locked", MAX_DECLINES)
    assert len(two_servers.rows(Payment, status="failed")) == MAX_DECLINES
    creates = [r for r in two_servers.standin.requests if r[:2] == ("POST", "/v2/payments")]
    assert len(creates) == MAX_DECLINES


def log_in(browser: Browser) -> None:
    status, html = browser.request("/login")
    assert status == 200
    form = {"email": STAFF_EMAIL, "password": STAFF_PASSWORD, "csrf_token": CSRF.search(html)[1]}
    status, _ = browser.request("/login", {**form, "next": ""})
    assert status == 303, status


def test_staff_refunding_one_payment_on_both_servers_at_once_never_refund_more_than_paid(
    two_servers,
):
    path = two_servers.new_link("125.00")
    patient = two_servers.browsers(1)[0]
    assert pay(patient, path, open_page(patient, path), "cnon:card-nonce-ok") == 200
    run_flask(
        {**two_servers.env, "PAYAPP_PASSWORD": STAFF_PASSWORD},
        "create-user",
        STAFF_EMAIL,
        "--role",
        "staff",
    )
    run_flask(two_servers.env, "allow-refunds", STAFF_EMAIL)
    [link] = two_servers.rows(PaymentLink)
    staff = two_servers.browsers(8)
    forms = []
    for browser in staff:
        log_in(browser)
        status, html = browser.request(f"/links/{link.id}")
        assert status == 200, status
        payment_id, refund_key = REFUND_FORM.search(html).groups()
        forms.append(
            {
                "csrf_token": CSRF.search(html)[1],
                "payment_id": payment_id,
                "refund_key": refund_key,
                "amount": "50.00",
                "reason": "overbilled",
            }
        )

    statuses = all_at_once(
        list(zip(staff, forms, strict=True)),
        lambda bf: bf[0].request(f"/links/{link.id}/refund", bf[1])[0],
    )

    assert statuses == [303] * len(staff)
    [payment] = two_servers.rows(Payment, status="completed")
    # Square answers a refund PENDING and completes it later: both count as money going back.
    refunds = two_servers.rows(Refund)
    assert sorted(r.amount_cents for r in refunds) == [5000, 5000]  # 100.00 of 125.00; no third
    assert {r.status for r in refunds} <= {"pending", "completed"}
    assert payment.refunded_cents == 10000
    at_the_bank = list(two_servers.standin.refunds.values())
    assert {r["status"] for r in at_the_bank} <= {"PENDING", "COMPLETED"}
    assert sum(r["amount_money"]["amount"] for r in at_the_bank) == 10000
