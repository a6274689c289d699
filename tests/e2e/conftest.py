"""Fixtures for the browser end-to-end tests: the real app behind TLS, driven by Chromium.

The app runs as it does in production: PAYAPP_ENV=production, gunicorn terminating TLS with a
certificate from a throwaway CA (trustme), the demo card gateway (no Square keys). That is what
lets these tests see Secure cookies, HSTS and flask-wtf's HTTPS-only Referer check at work, which
the plain-HTTP Flask test client never exercises.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Error, Page

from tests.support.square_standin import SquareStandin

from ..support.servers import (
    ServerError,
    create_link_url,
    free_port,
    make_certificate,
    payapp_env,
    run_flask,
    running_gunicorn,
    square_mode_env,
    tail,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

STANDIN_TOKEN = "EAAAstandin-e2e-token"
STANDIN_LOCATION = "LSTANDINE2E"

# Where the session's gunicorn log lives, so a failing test's report can show it.
GUNICORN_LOG = pytest.StashKey[Path]()


# --- The app under test ----------------------------------------------------------------------


@dataclass(frozen=True)
class PayappServer:
    """A running gunicorn serving payapp over HTTPS, plus the CLI against the same database."""

    base_url: str
    env: dict[str, str]
    log_path: Path
    staff_email: str
    staff_password: str

    def flask(self, *args: str, extra_env: dict[str, str] | None = None) -> str:
        """Run ``flask --app payapp ARGS`` with the server's environment; return its stdout."""
        try:
            return run_flask({**self.env, **(extra_env or {})}, *args)
        except ServerError as exc:
            pytest.fail(str(exc))

    def create_link(
        self,
        *,
        reference: str,
        amount: str = "125.00",
        name: str = "Jane Doe",
        email: str = "jane@example.com",
        postal_code: str = "",
        language: str = "",
        min_payment: str = "",
    ) -> str:
        """Create a payment link with the CLI and return the patient's URL (its last line)."""
        options = ["--amount", amount, "--name", name, "--email", email, "--reference", reference]
        options += ["--zip", postal_code] if postal_code else []
        if language:
            options += ["--language", language]
        if min_payment:
            options += ["--min-payment", min_payment]
        try:
            return create_link_url(self.env, self.base_url, *options)
        except ServerError as exc:
            pytest.fail(str(exc))


@contextmanager
def _running_server(
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
    name: str,
    extra_env: dict[str, str] | None = None,
) -> Iterator[PayappServer]:
    """gunicorn serving payapp over HTTPS on a free port, with a fresh database and one admin.

    Production mode, demo card gateway unless ``extra_env`` says otherwise: that is what lets
    these tests see Secure cookies, HSTS and flask-wtf's HTTPS-only Referer check at work."""
    workdir = tmp_path_factory.mktemp(name)
    certificate = make_certificate(workdir / "tls")
    port = free_port()
    base_url = f"https://127.0.0.1:{port}"
    env = payapp_env(
        workdir,
        base_url,
        PAYAPP_ENV="production",
        PAYAPP_SECRET_KEY=secrets.token_hex(32),
        PAYAPP_CLINIC_NAME="Maple Street Dental",
        PAYAPP_CLINIC_PHONE="(555) 010-0142",
    )
    server = PayappServer(
        base_url=base_url,
        env={**env, **(extra_env or {})},
        log_path=workdir / "gunicorn.log",
        staff_email="frontdesk@maplestreet.example",
        staff_password=f"e2e-{secrets.token_urlsafe(16)}",
    )

    # Same environment for the CLI and gunicorn: they must share the database and settings.
    server.flask("init-db")
    server.flask(
        "create-user", server.staff_email, "--role", "admin",
        extra_env={"PAYAPP_PASSWORD": server.staff_password},
    )  # fmt: skip

    pytestconfig.stash[GUNICORN_LOG] = server.log_path
    # --access-logfile -: requests too, next to the errors, for debugging.
    options = ("--workers", "1", "--threads", "4", "--access-logfile", "-")
    try:
        with running_gunicorn(
            server.env, port, server.log_path, certificate=certificate, options=options
        ):
            yield server
    except ServerError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def payapp_server(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[PayappServer]:
    """payapp in production mode with the demo card gateway."""
    with _running_server(tmp_path_factory, pytestconfig, "payapp-e2e") as server:
        yield server


@pytest.fixture(scope="session")
def square_standin() -> Iterator[SquareStandin]:
    with SquareStandin(access_token=STANDIN_TOKEN, location_id=STANDIN_LOCATION) as standin:
        yield standin
        assert standin.schema_errors == []


@pytest.fixture(scope="session")
def square_server(
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
    square_standin: SquareStandin,
) -> Iterator[PayappServer]:
    """payapp in production mode in Square mode, its Square API calls going to the stand-in."""
    square_env = square_mode_env(square_standin, application_id="sandbox-sq0idb-e2e-app")
    with _running_server(tmp_path_factory, pytestconfig, "payapp-square", square_env) as server:
        yield server


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """Attach the tail of gunicorn's log to the report of any failing test that used it."""
    report = yield
    log_path = item.config.stash.get(GUNICORN_LOG, None)
    if report.failed and log_path is not None and "payapp_server" in item.fixturenames:
        report.sections.append(("gunicorn log (tail)", tail(log_path)))
    return report


# --- Chromium --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    # Debian's Chromium: Playwright's own browser builds can't be downloaded here.
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    # Trust our test CA's certificate. The connection is still TLS, so the app (and Chromium)
    # treat it as HTTPS: Secure cookies are kept and sent back, HSTS and the Referer check apply.
    return {**browser_context_args, "ignore_https_errors": True}


@pytest.fixture
def browser_problems() -> list[str]:
    """CSP violations and uncaught script errors seen on any page of the test's browser context.

    Each test asserts this is empty at its end: a CSP that blocks the app's own scripts or styles
    (or a script that throws) can leave a page looking fine while htmx or the card form is dead.
    """
    return []


@pytest.fixture
def context(context: BrowserContext, browser_problems: list[str]) -> BrowserContext:
    # Hook every page as it is created (the `page` fixture's included), not only the first one.
    context.on("page", lambda page: _record_problems(page, browser_problems))
    return context


def _record_problems(page: Page, problems: list[str]) -> None:
    def on_console(message: ConsoleMessage) -> None:
        # Chromium reports CSP violations as console errors naming the "Content Security Policy".
        if "Content Security Policy" in message.text:
            problems.append(f"console {message.type} on {page.url}: {message.text}")

    def on_page_error(error: Error) -> None:
        problems.append(f"uncaught error on {page.url}: {error}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
