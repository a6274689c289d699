"""Fixtures for the integration tests: real local servers and real processes, no test doubles.

* ``tls_cert``: a certificate for 127.0.0.1 from a throwaway CA (trustme).
* ``starttls_smtp`` / ``implicit_tls_smtp``: aiosmtpd servers that record what they receive.
* ``make_payapp``: the real app factory, isolated in a temporary instance folder and database.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

import payapp
from payapp.db import upgrade_schema

from ..support.postgres import drop_database, empty_database_url
from ..support.servers import TlsCertificate, free_port, make_certificate

SMTP_USER = "clinic"
SMTP_PASSWORD = "s3cret-pass"  # noqa: S105 - a throwaway credential for a local test server


def scrub_payapp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget PAYAPP_* settings from the developer's shell: each test says what it configures."""
    for key in list(os.environ):
        if key.startswith("PAYAPP_"):
            monkeypatch.delenv(key)


# --- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> TlsCertificate:
    """A certificate for IP 127.0.0.1; the app trusts its CA (``ca_cert``) via ?cafile=."""
    return make_certificate(tmp_path_factory.mktemp("tls"))


# --- SMTP --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One message as the SMTP server got it."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class RecordingHandler:
    """aiosmtpd handler that accepts every message and keeps it."""

    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content))
        )
        return "250 Message accepted for delivery"


def clinic_only_authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    """Accept exactly one account, the way a mail provider would."""
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    scheme: str  # what payapp's SMTP_URL calls this kind of server
    port: int
    cafile: Path
    handler: RecordingHandler

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def url(self, user: str = SMTP_USER, password: str = SMTP_PASSWORD) -> str:
        return f"{self.scheme}://{user}:{password}@127.0.0.1:{self.port}?cafile={self.cafile}"


def _run_smtp(controller: Controller, server: SmtpServer) -> Iterator[SmtpServer]:
    controller.start()  # returns once the server answered a real connection
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def starttls_smtp(tls_cert: TlsCertificate) -> Iterator[SmtpServer]:
    """Like a mail provider's port 587: plain connect, STARTTLS required, then AUTH required."""
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        ready_timeout=10,
        tls_context=tls_cert.server_context(),
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=clinic_only_authenticator,
    )
    yield from _run_smtp(controller, SmtpServer("smtp+starttls", port, tls_cert.ca_cert, handler))


@pytest.fixture
def implicit_tls_smtp(tls_cert: TlsCertificate) -> Iterator[SmtpServer]:
    """Like a mail provider's port 465: TLS from the first byte, then AUTH required.

    aiosmtpd only counts STARTTLS as "TLS" for auth_require_tls, so it is off here: the whole
    connection is already encrypted (it warns that AUTH is required without TLS; not so here).
    """
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        ready_timeout=10,
        ssl_context=tls_cert.server_context(),
        auth_required=True,
        auth_require_tls=False,
        authenticator=clinic_only_authenticator,
    )
    yield from _run_smtp(controller, SmtpServer("smtps", port, tls_cert.ca_cert, handler))


# --- the app -----------------------------------------------------------------------------------


@pytest.fixture
def make_payapp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., object]]:
    """Build the real app on a temporary database (SQLite, or a new one on the PostgreSQL leg)
    with the schema migrated to head.

    Call it with config overrides: ``make_payapp(SMTP_URL=...)``. The instance folder is a temp
    one, so a developer's instance/config.py or PAYAPP_* shell settings cannot leak in.
    """
    scrub_payapp_env(monkeypatch)
    monkeypatch.setenv("PAYAPP_INSTANCE_PATH", str(tmp_path / "instance"))
    built = []
    database_url = empty_database_url(tmp_path / "t.db")

    def build(**overrides):
        config = {
            "TESTING": True,
            "SECRET_KEY": "integration-test-secret-key-0123456789",
            "DATABASE_URL": database_url,
            "OUTBOX_DIR": str(tmp_path / "outbox"),
            "SMTP_TIMEOUT": 5,
            "TEXT_HOURS": "",  # texts at any hour: these tests run at any hour
            **overrides,
        }
        application = payapp.create_app(config)
        upgrade_schema(application.extensions["payapp.engine"])
        built.append(application)
        return application

    yield build
    for application in built:
        application.extensions["payapp.engine"].dispose()
    if database_url.startswith("postgresql"):
        drop_database(database_url)
