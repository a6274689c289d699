"""Fixtures for the browser end-to-end tests: the real app behind TLS, driven by Chromium.

The app runs as it does in production: PAYAPP_ENV=production, gunicorn terminating TLS with a
self-signed certificate, the demo card gateway (no Square keys). That is what lets these tests
see Secure cookies, HSTS and flask-wtf's HTTPS-only Referer check at work, which the plain-HTTP
Flask test client never exercises.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Error, Page

from tests.support.square_standin import SquareStandin

REPO_ROOT = Path(__file__).resolve().parents[2]
# The flask and gunicorn scripts of the interpreter running pytest (the project's venv).
VENV_BIN = Path(sys.executable).parent

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
SERVER_START_TIMEOUT_S = 30
CLI_TIMEOUT_S = 60
LOG_TAIL_LINES = 200

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
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [str(VENV_BIN / "flask"), "--app", "payapp", *args],
            cwd=REPO_ROOT,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
        )
        if result.returncode != 0:
            pytest.fail(
                f"`flask --app payapp {' '.join(args)}` exited with {result.returncode}\n"
                f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
            )
        return result.stdout

    def create_link(
        self,
        *,
        reference: str,
        amount: str = "125.00",
        name: str = "Jane Doe",
        email: str = "jane@example.com",
    ) -> str:
        """Create a payment link with the CLI and return the patient's URL (its last line)."""
        stdout = self.flask(
            "create-link",
            "--amount", amount,
            "--name", name,
            "--email", email,
            "--reference", reference,
        )  # fmt: skip
        lines = stdout.strip().splitlines()
        pay_url = lines[-1].strip() if lines else ""
        assert pay_url.startswith(f"{self.base_url}/pay/"), (
            f"create-link's last stdout line is not a patient URL on {self.base_url}:\n{stdout}"
        )
        return pay_url


def _free_port() -> int:
    # The OS picks an unused port; gunicorn binds it a moment later. The race is harmless here.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _make_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    openssl = [
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",  # Chromium wants SAN
        "-keyout", str(key), "-out", str(cert),
    ]  # fmt: skip
    subprocess.run(openssl, check=True, capture_output=True, timeout=CLI_TIMEOUT_S)  # noqa: S603
    return cert, key


def _production_env(workdir: Path, base_url: str) -> dict[str, str]:
    # Drop the developer's own PAYAPP_*/FLASK_* settings (Square keys, debug mode, another
    # database...) so the run is the same everywhere: production mode, demo gateway, tmp files.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYAPP_", "FLASK_"))}
    env.update(
        # An empty instance folder, so a local instance/config.py (Square keys...) can't leak in.
        PAYAPP_INSTANCE_PATH=str(workdir / "instance"),
        PAYAPP_ENV="production",
        PAYAPP_SECRET_KEY=secrets.token_hex(32),
        PAYAPP_DATABASE_URL=f"sqlite:///{workdir / 'payapp.db'}",  # absolute path: 4 slashes
        PAYAPP_PUBLIC_BASE_URL=base_url,
        PAYAPP_OUTBOX_DIR=str(workdir / "outbox"),
        PAYAPP_CLINIC_NAME="Maple Street Dental",
        PAYAPP_CLINIC_PHONE="(555) 010-0142",
    )
    return env


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(could not read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _wait_until_healthy(server: subprocess.Popen, base_url: str, log_path: Path) -> None:
    """Poll GET /healthz over TLS until it answers {"status": "ok"}, or fail with the log."""
    # The certificate is self-signed: this probe only asks "is it up?", not "is it trusted?".
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE

    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    last_problem: object = "no attempt made"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(  # noqa: S310 - our own https:// URL
                f"{base_url}/healthz", context=unverified, timeout=2
            ) as response:
                body = json.load(response)
            if isinstance(body, dict) and body.get("status") == "ok":
                return
            last_problem = f"/healthz answered {body!r}"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            last_problem = exc  # not listening yet, TLS not up yet, 5xx, not JSON...
        # Pause between probes by waiting on gunicorn itself, which returns at once if it died.
        try:
            server.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(
            f"gunicorn exited with code {server.returncode} before /healthz answered.\n"
            f"--- gunicorn log ---\n{_tail(log_path)}"
        )
    pytest.fail(
        f"{base_url}/healthz did not answer {{'status': 'ok'}} within "
        f"{SERVER_START_TIMEOUT_S}s (last: {last_problem!r}).\n"
        f"--- gunicorn log ---\n{_tail(log_path)}"
    )


@contextmanager
def _running_server(
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
    name: str,
    extra_env: dict[str, str] | None = None,
) -> Iterator[PayappServer]:
    """gunicorn serving payapp over HTTPS on a free port, with a fresh database and one admin."""
    workdir = tmp_path_factory.mktemp(name)
    cert, key = _make_self_signed_cert(workdir)
    port = _free_port()
    base_url = f"https://127.0.0.1:{port}"
    server = PayappServer(
        base_url=base_url,
        env={**_production_env(workdir, base_url), **(extra_env or {})},
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
    gunicorn_argv = [
        str(VENV_BIN / "gunicorn"),
        "--bind", f"127.0.0.1:{port}",
        "--certfile", str(cert),
        "--keyfile", str(key),
        "--workers", "1",
        "--threads", "4",
        "--access-logfile", "-",  # requests too, next to the errors, for debugging
        "wsgi:app",
    ]  # fmt: skip
    with server.log_path.open("wb") as log:
        gunicorn = subprocess.Popen(  # noqa: S603
            gunicorn_argv, cwd=REPO_ROOT, env=server.env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait_until_healthy(gunicorn, base_url, server.log_path)
            yield server
        finally:
            gunicorn.terminate()
            try:
                gunicorn.wait(timeout=10)
            except subprocess.TimeoutExpired:
                gunicorn.kill()
                gunicorn.wait()


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
    square_env = {
        "PAYAPP_SQUARE_ACCESS_TOKEN": STANDIN_TOKEN,
        "PAYAPP_SQUARE_APPLICATION_ID": "sandbox-sq0idb-e2e-app",
        "PAYAPP_SQUARE_LOCATION_ID": STANDIN_LOCATION,
        "PAYAPP_SQUARE_ENVIRONMENT": "sandbox",
        "PAYAPP_SQUARE_BASE_URL": square_standin.base_url,
    }
    with _running_server(tmp_path_factory, pytestconfig, "payapp-square", square_env) as server:
        yield server


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """Attach the tail of gunicorn's log to the report of any failing test that used it."""
    report = yield
    log_path = item.config.stash.get(GUNICORN_LOG, None)
    if report.failed and log_path is not None and "payapp_server" in item.fixturenames:
        report.sections.append(("gunicorn log (tail)", _tail(log_path)))
    return report


# --- Chromium --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    # Debian's Chromium: Playwright's own browser builds can't be downloaded here.
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    # Trust our self-signed certificate. The connection is still TLS, so the app (and Chromium)
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
