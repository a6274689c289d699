"""Fixtures: a fresh app and database per test (demo gateway, outbox in tmp, CSRF ON),
clients that behave like browsers (they scrape the CSRF token), and a link factory.

Speed: the schema is migrated and the standard users are created once per session in a template
SQLite file that each test copies (on the PostgreSQL leg, PAYAPP_TEST_DATABASE_URL, a template
database that each test copies with CREATE DATABASE ... TEMPLATE), and passwords are hashed with
a cheap method unless a test is marked ``real_password_hash``."""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from jinja2 import BytecodeCache
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from payapp import create_app, passwords
from payapp.accounts import create_user, find_user
from payapp.db import get_session, make_engine, upgrade_schema
from payapp.links import LinkDraft, LinkRules, create_link, sign_token
from payapp.mfa import counter_at
from payapp.models import AuditEvent, StaffUser, utcnow
from tests.support import postgres

STAFF_EMAIL = "frontdesk@example.com"
STAFF_PASSWORD = "correct horse battery"  # noqa: S105
ADMIN_EMAIL = "admin@example.com"
# Admins must use TOTP: the test admin is enrolled with this secret, and log_in() computes codes.
ADMIN_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # noqa: S105
TEST_SECRET = "test-secret-key-" + "k" * 40

CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
ATTEMPT_INPUT = re.compile(r'name="attempt_key" id="attempt-key" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_INPUT.search(html) or re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match[1]


# --- passwords: cheap hashes unless a test is about hashing --------------------------------------

# Production hashes with scrypt on purpose (about 50 ms each); tests about something else log in
# thousands of times, so they hash with one cheap PBKDF2 method instead.
FAST_HASH_METHOD = "pbkdf2:sha256:1000"


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashes():
    """Every new password hash, and the dummy hash refused logins are checked against, use
    FAST_HASH_METHOD for the whole session (payapp.passwords.HASH_METHOD)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "HASH_METHOD", FAST_HASH_METHOD)
        yield


@pytest.fixture
def password_hashing(request, monkeypatch) -> str:
    """``scrypt`` for tests marked ``real_password_hash`` (production's hashing, restored for
    the test), else FAST_HASH_METHOD."""
    if request.node.get_closest_marker("real_password_hash") is None:
        return FAST_HASH_METHOD
    monkeypatch.setattr(passwords, "HASH_METHOD", "scrypt")
    return "scrypt"


# --- the database: migrated once, copied per test ------------------------------------------------


def _make_standard_users(session: Session) -> None:
    create_user(session, STAFF_EMAIL, STAFF_PASSWORD, "staff")
    admin = create_user(session, ADMIN_EMAIL, STAFF_PASSWORD, "admin")
    admin.totp_secret, admin.mfa_enabled_at = ADMIN_TOTP_SECRET, utcnow()
    session.commit()


class SqliteTemplate:
    """The default: a SQLite file migrated to head; each test gets a copy of the file."""

    def __init__(self, folder: Path):
        self.path = folder / "payapp.db"
        self.url = f"sqlite:///{self.path}"

    def finish(self, engine) -> None:
        with engine.connect() as conn:
            # Everything into the main file, so copying that one file copies the whole database.
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def fresh(self, folder: Path) -> str:
        return copy_of_template(self.path, folder)

    def drop(self, url: str) -> None:
        """Nothing to do: the copy lives in the test's tmp_path."""

    def close(self) -> None:
        """Nothing to do: the file lives in pytest's temporary folder."""


class PostgresTemplate:
    """The PostgreSQL leg (PAYAPP_TEST_DATABASE_URL): a database migrated to head once per
    process, copied per test with CREATE DATABASE ... TEMPLATE and dropped after it."""

    def __init__(self, server_url: str):
        self.url = postgres.create_database(server_url, prefix="tpl")
        self.name = make_url(self.url).database

    def finish(self, engine) -> None:
        """Nothing to do: the engine is disposed, so the template has no sessions to block it."""

    def fresh(self, folder: Path) -> str:
        return postgres.create_database(self.url, template=self.name)

    def drop(self, url: str) -> None:
        postgres.drop_database(url)

    def close(self) -> None:
        postgres.drop_database(self.url)


@pytest.fixture(scope="session")
def template_database(tmp_path_factory, fast_password_hashes):
    """A database migrated to head with the standard users (front desk, admin with TOTP): a
    SQLite file, or on the PostgreSQL leg a template database on that server."""
    server_url = postgres.test_server_url()
    if server_url:
        template = PostgresTemplate(server_url)
    else:
        template = SqliteTemplate(tmp_path_factory.mktemp("template-db"))
    engine = make_engine(template.url)
    upgrade_schema(engine)
    with Session(engine) as session:
        _make_standard_users(session)
    template.finish(engine)
    engine.dispose()
    yield template
    template.close()


def copy_of_template(template: Path, folder: Path) -> str:
    """A fresh SQLite database for one test: a copy of the template file; returns its URL."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "test.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def database_url(tmp_path, template_database):
    """A fresh copy of the template database for one test (dropped afterwards)."""
    url = template_database.fresh(tmp_path)
    yield url
    template_database.drop(url)


@pytest.fixture
def db_session(database_url):
    """A plain SQLAlchemy session on a fresh copy of the template database, for domain tests
    that need no app and no request."""
    engine = make_engine(database_url)
    session = sessionmaker(engine, expire_on_commit=False)()
    yield session
    session.close()
    engine.dispose()


def pytest_collection_modifyitems(config, items):
    """On the PostgreSQL leg, tests marked ``sqlite_only`` are deselected (each says why)."""
    if not postgres.test_server_url():
        return
    kept = [item for item in items if item.get_closest_marker("sqlite_only") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


class _TemplateCodeCache(BytecodeCache):
    """Compiled templates shared by every app of the session (Jinja checks each source's
    checksum): each test's app would otherwise compile the same templates again."""

    def __init__(self):
        self.code: dict[str, bytes] = {}

    def load_bytecode(self, bucket):
        if bucket.key in self.code:
            bucket.bytecode_from_string(self.code[bucket.key])

    def dump_bytecode(self, bucket):
        self.code[bucket.key] = bucket.bytecode_to_string()


TEMPLATE_CODE_CACHE = _TemplateCodeCache()


@pytest.fixture
def config_overrides():
    """Tests override settings by overriding this fixture or updating the dict."""
    return {}


@pytest.fixture
def app(tmp_path, monkeypatch, config_overrides, database_url, password_hashing):
    monkeypatch.setenv("PAYAPP_INSTANCE_PATH", str(tmp_path / "instance"))
    settings = {
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET,
        "DATABASE_URL": database_url,
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "PUBLIC_BASE_URL": "http://localhost",
        "CLINIC_NAME": "Bright Smile Dental",
        "CLINIC_PHONE": "(212) 555-0100",
        "RATELIMIT_ENABLED": False,
        "TEXT_HOURS": "",  # texts at any hour; tests of clinic hours set their own
    }
    settings.update(config_overrides)
    application = create_app(settings)
    application.jinja_env.bytecode_cache = TEMPLATE_CODE_CACHE
    if password_hashing != FAST_HASH_METHOD:
        with application.app_context():
            for user in get_session().scalars(select(StaffUser)):
                user.password_hash = passwords.hash_password(STAFF_PASSWORD)
            get_session().commit()
    yield application
    engine = application.extensions["payapp.engine"]
    left = engine.pool.checkedout()
    engine.dispose()
    # A session never closed keeps its connection until the garbage collector finds it: in the
    # server a connection idle in a transaction; in this suite, on PostgreSQL, a rollback that
    # fails once the test's database is dropped, logged from inside whatever code the collector
    # interrupted (on Python 3.11, inside a compile(): "AST constructor recursion depth
    # mismatch", CPython gh-106905). So no test may leave one.
    assert left == 0, f"the test left {left} pooled connection(s) checked out"


@pytest.fixture
def session(request):
    """A database session for domain tests: the app's (in an app context) when the test uses
    ``app``, else a plain ``db_session`` with no app at all."""
    if "app" not in request.fixturenames:
        yield request.getfixturevalue("db_session")
        return
    with request.getfixturevalue("app").app_context():
        yield get_session()


def audit_actions(app) -> list[str]:
    """Every audit action so far, oldest first."""
    with app.app_context():
        return list(get_session().scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def stored_user(app, email: str = STAFF_EMAIL) -> StaffUser:
    """The staff account as stored now (detached; read its fields)."""
    with app.app_context():
        return find_user(get_session(), email)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def gateway(app):
    """The demo gateway; ``gateway.charges`` lists every request that reached "the bank"."""
    return app.extensions["payapp.gateway"]


def fresh_totp(app, email, secret) -> str:
    """A TOTP code the app will accept now: within one step of the current time and later than
    the last step this user has used (a code is accepted only once). The current step comes
    first: a code from the step before goes stale if the clock ticks over before the server
    checks it (seen under load)."""
    with app.app_context():
        last = find_user(get_session(), email).totp_last_counter
    now = counter_at(utcnow())
    for counter in (now, now + 1):
        if last is None or counter > last:
            return pyotp.TOTP(secret).generate_otp(counter)
    raise AssertionError("every TOTP step in the window is used: travel in time first")


def submit_code(client, code):
    """The second login step: the code from the authenticator app (or a recovery code)."""
    page = client.get("/login/code")
    return client.post("/login/code", data={"code": code, "csrf_token": csrf_from(page.text)})


def log_in(client, email=STAFF_EMAIL, password=STAFF_PASSWORD, next_url="", totp_secret=None):
    """Log in like a browser. When the password step asks for a code and the secret is known
    (given, or the test admin's), the code step is done too and its response returned."""
    page = client.get("/login" + (f"?next={next_url}" if next_url else ""))
    response = client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "csrf_token": csrf_from(page.text),
            "next": next_url,
        },
    )
    if response.status_code == 303 and response.headers["Location"] == "/login/code":
        if totp_secret is None and email.strip().lower() == ADMIN_EMAIL:
            totp_secret = ADMIN_TOTP_SECRET
        if totp_secret:
            response = submit_code(client, fresh_totp(client.application, email, totp_secret))
    return response


@pytest.fixture
def staff(app):
    """A logged-in front-desk client."""
    c = app.test_client()
    response = log_in(c)
    assert response.status_code == 303
    return c


@pytest.fixture
def admin(app):
    """A logged-in admin client (password and TOTP code)."""
    c = app.test_client()
    response = log_in(c, email=ADMIN_EMAIL)
    assert response.status_code == 303, response.status_code
    return c


def staff_post(client, url, data=None, page_url=None, **kwargs):
    """POST like a browser: take the CSRF token from the page the form is on."""
    page = client.get(page_url or url)
    payload = {"csrf_token": csrf_from(page.text), **(data or {})}
    return client.post(url, data=payload, **kwargs)


@dataclass
class MadeLink:
    id: int
    token: str
    public_id: str

    @property
    def path(self) -> str:
        return f"/pay/{self.token}"


@pytest.fixture
def link_factory(app):
    def make(**fields) -> MadeLink:
        values = {
            "patient_name": "Jane Q Doe",
            "email": "jane@example.com",
            "amount": "125.00",
            "reference": "INV-1001",
        }
        values.update(fields)
        with app.app_context():
            link = create_link(
                get_session(), LinkDraft(**values), LinkRules.from_config(app.config)
            )
            return MadeLink(link.id, sign_token(link, app.config["SECRET_KEY"]), link.public_id)

    return make


@dataclass
class PayPage:
    html: str
    csrf: str
    attempt_key: str


def open_pay_page(client, path) -> PayPage:
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    html = response.text
    return PayPage(html, csrf_from(html), ATTEMPT_INPUT.search(html)[1])


def submit_card(
    client, path, nonce="cnon:card-nonce-ok", postal_code="94103", page=None, extra=None, htmx=True
):
    """What pay.js posts after tokenizing: token, ZIP, attempt key (and the CSRF token)."""
    page = page or open_pay_page(client, path)
    data = {
        "csrf_token": page.csrf,
        "source_id": nonce,
        "postal_code": postal_code,
        "attempt_key": page.attempt_key,
        **(extra or {}),
    }
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(path, data=data, headers=headers)


# --- logs of the whole suite ------------------------------------------------------------------

SECRETS_IN_LOGS = {
    "a payment-link token": re.compile(r"/pay/[A-Za-z0-9_\-]{12,}\.[A-Za-z0-9_\-]{8,}"),
    "a reminder opt-out token": re.compile(
        r"/reminders/stop/[A-Za-z0-9_\-]{12,}\.[A-Za-z0-9_\-]{8,}"
    ),
    "a card token": re.compile(r"\bcnon:[A-Za-z0-9_\-]+"),
    "a Square access token": re.compile(r"\bEAAA[A-Za-z0-9_\-]{6,}"),
    "a full email address": re.compile(r"[A-Za-z0-9._%+\-]{2,}@[A-Za-z0-9\-]+\.[A-Za-z]{2,}"),
    "a phone number": re.compile(r"\+\d{10,15}\b"),
}


class _Everything(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture(scope="session", autouse=True)
def logs_never_carry_secrets():
    """Every log record of the whole run (any logger, INFO and up) is checked at the end for
    tokens, card tokens, access tokens, full emails and phone numbers (requirement L1)."""
    handler = _Everything()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield
    root.removeHandler(handler)
    root.setLevel(previous)
    leaks = [
        f"{what}: {line[:200]}"
        for line in handler.lines
        for what, pattern in SECRETS_IN_LOGS.items()
        if pattern.search(line)
    ]
    assert not leaks, "secrets in the logs:\n" + "\n".join(leaks[:20])
