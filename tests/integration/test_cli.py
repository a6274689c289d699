"""The `flask --app payapp ...` commands end to end, each as its own process, as an admin runs them.

Results are checked where a user would notice them: exit codes and messages on the terminal,
and the database the web app then serves (read back through the real app in this process).
"""

from __future__ import annotations

import email
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import policy
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

import payapp
from payapp.accounts import create_user
from payapp.db import get_session, upgrade_schema
from payapp.links import LinkDraft, LinkRules, create_link
from payapp.login import authenticate
from payapp.models import PaymentLink, StaffUser, utcnow

from ..support.postgres import empty_database_url
from .conftest import scrub_payapp_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_URL = "https://pay.example.test"
CLI_TIMEOUT_S = 60
GOOD_PASSWORD = "correct-horse-battery"  # noqa: S105 - test account on a throwaway database


@dataclass
class Cli:
    """The command line against one throwaway instance folder and database."""

    env: dict[str, str]
    monkeypatch: pytest.MonkeyPatch | None = None
    built: list = field(default_factory=list)

    def run(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed argv, no shell
            [sys.executable, "-m", "flask", "--app", "payapp", *args],
            cwd=REPO_ROOT,
            env={**self.env, **extra_env},
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )

    def ok(self, *args: str, **extra_env: str) -> str:
        result = self.run(*args, **extra_env)
        assert result.returncode == 0, (
            f"`flask {' '.join(args)}` exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
        return result.stdout

    def web_app(self):
        """The web app built in this process from the very same PAYAPP_* settings."""
        assert self.monkeypatch is not None
        for key, value in self.env.items():
            if key.startswith("PAYAPP_"):
                self.monkeypatch.setenv(key, value)
        application = payapp.create_app({"TESTING": True})
        self.built.append(application)
        return application

    def migrate(self) -> None:
        """Create the schema (in-process, to keep the suite fast; init-db has its own test)."""
        upgrade_schema(self.web_app().extensions["payapp.engine"])


def cli_env(folder: Path) -> dict[str, str]:
    """This shell's environment minus any PAYAPP_* settings, plus a throwaway instance (and
    database: SQLite, or a new one on the PostgreSQL leg)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYAPP_")}
    env.update(
        PAYAPP_INSTANCE_PATH=str(folder / "instance"),
        PAYAPP_DATABASE_URL=empty_database_url(folder / "cli.db"),
        PAYAPP_PUBLIC_BASE_URL=BASE_URL,
        PAYAPP_OUTBOX_DIR=str(folder / "outbox"),
    )
    return env


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    scrub_payapp_env(monkeypatch)
    runner = Cli(cli_env(tmp_path), monkeypatch)
    yield runner
    for application in runner.built:
        application.extensions["payapp.engine"].dispose()


@pytest.fixture
def migrated_cli(cli: Cli) -> Cli:
    cli.migrate()
    return cli


def assert_clean_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Failed with a short message for a person, not a Python traceback."""
    assert result.returncode != 0, f"expected a failure, got:\n{result.stdout}"
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# --- init-db -----------------------------------------------------------------------------------


def test_init_db_creates_the_schema_and_running_it_again_is_harmless(cli: Cli):
    assert "Database is up to date." in cli.ok("init-db")
    assert "Database is up to date." in cli.ok("init-db")

    with cli.web_app().app_context():
        assert get_session().scalars(select(StaffUser)).all() == []


# --- create-user -------------------------------------------------------------------------------


def test_create_user_with_a_twelve_character_password_makes_an_account_that_can_log_in(
    migrated_cli: Cli,
):
    out = migrated_cli.ok(
        "create-user", "a@example.com", "--role", "admin", PAYAPP_PASSWORD=GOOD_PASSWORD
    )
    assert "a@example.com" in out

    with migrated_cli.web_app().app_context():
        user = authenticate(get_session(), "a@example.com", GOOD_PASSWORD)
        assert user.role == "admin"


def test_create_user_with_a_short_password_fails_with_a_one_line_error(migrated_cli: Cli):
    result = migrated_cli.run(
        "create-user", "a@example.com", "--role", "admin", PAYAPP_PASSWORD="eleven-char"
    )

    assert_clean_error(result, "at least 12 characters")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    with migrated_cli.web_app().app_context():
        assert get_session().scalars(select(StaffUser)).all() == []


def test_create_user_refuses_an_email_that_already_has_an_account_whatever_its_case(
    migrated_cli: Cli,
):
    with migrated_cli.web_app().app_context():
        create_user(get_session(), "a@example.com", GOOD_PASSWORD, "staff")

    result = migrated_cli.run(
        "create-user", "A@Example.com", "--role", "admin", PAYAPP_PASSWORD="another-long-password"
    )

    assert_clean_error(result, "already exists")
    with migrated_cli.web_app().app_context():
        [user] = get_session().scalars(select(StaffUser)).all()
        assert user.role == "staff"


# --- create-link -------------------------------------------------------------------------------


def test_create_link_prints_the_patient_url_last_and_that_page_asks_for_the_amount(
    migrated_cli: Cli,
):
    out = migrated_cli.ok(
        *shlex.split(
            'create-link --amount 125.00 --name "Jane Doe" --email jane@example.com'
            " --reference INV-1 --expires-in 14d"
        )
    )

    url = out.strip().splitlines()[-1]
    assert url.startswith(f"{BASE_URL}/pay/"), out
    with migrated_cli.web_app().test_client() as browser:
        page = browser.get(urlsplit(url).path)
        assert page.status_code == 200
        html = page.get_data(as_text=True)
    assert "$125.00" in html
    assert "INV-1" in html
    assert "Jane" in html
    assert "Doe" not in html, "the patient page shows more of the name than the first name"


def test_create_link_with_send_emails_the_same_url_to_the_outbox(migrated_cli: Cli):
    out = migrated_cli.ok(
        *shlex.split(
            'create-link --amount 80.00 --name "Jane Doe" --email jane@example.com'
            ' --description "crown prep" --send'
        )
    )

    url = out.strip().splitlines()[-1]
    assert "email to jane@example.com: sent" in out
    [eml] = Path(migrated_cli.env["PAYAPP_OUTBOX_DIR"]).glob("*.eml")
    sent = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert sent["To"] == "jane@example.com"
    body = sent.get_body(preferencelist=("plain",)).get_content()
    assert url in body
    assert "$80.00" in body
    assert "crown" not in body.lower()


def test_create_link_rejects_an_amount_with_three_decimal_places(migrated_cli: Cli):
    result = migrated_cli.run(
        *shlex.split('create-link --amount 12.345 --name "Jane Doe" --email jane@example.com')
    )

    assert_clean_error(result, "two decimal places")
    assert "/pay/" not in result.stdout
    with migrated_cli.web_app().app_context():
        assert get_session().scalars(select(PaymentLink)).all() == []


def test_create_link_rejects_an_expiry_beyond_ninety_days(migrated_cli: Cli):
    result = migrated_cli.run(
        *shlex.split(
            'create-link --amount 125.00 --name "Jane Doe" --email jane@example.com'
            " --expires-in 91d"
        )
    )

    assert_clean_error(result, "1 to 90")
    with migrated_cli.web_app().app_context():
        assert get_session().scalars(select(PaymentLink)).all() == []


# --- run-jobs, demo-setup ----------------------------------------------------------------------


def test_run_jobs_marks_links_past_their_expiry_as_expired(migrated_cli: Cli):
    with migrated_cli.web_app().app_context():
        draft = LinkDraft(patient_name="Jane Doe", email="jane@example.com", amount="40.00")
        stale = create_link(get_session(), draft, LinkRules(), now=utcnow() - timedelta(days=20)).id
        fresh = create_link(get_session(), draft, LinkRules()).id

    out = migrated_cli.ok("run-jobs")

    assert "Expired 1 link(s)." in out
    with migrated_cli.web_app().app_context():
        session = get_session()
        assert session.get(PaymentLink, stale).status == "expired"
        assert session.get(PaymentLink, fresh).status == "open"


def test_demo_setup_prints_a_demo_login_that_really_logs_in(cli: Cli):
    out = cli.ok("demo-setup")

    password = re.search(r"password for both: (\S+)\)", out)[1]
    front_desk = re.search(r"Front desk: (\S+)", out)[1]
    admin = re.search(r"Admin: +(\S+)", out)[1]
    assert f"{BASE_URL}/login" in out
    with cli.web_app().app_context():
        assert authenticate(get_session(), front_desk, password).role == "staff"
        assert authenticate(get_session(), admin, password).role == "admin"
    cli.ok("demo-setup")  # running it again (e.g. after an upgrade) must not fail


# --- production safety, health ------------------------------------------------------------------


@pytest.fixture(scope="module")
def production_without_secret(tmp_path_factory) -> subprocess.CompletedProcess[str]:
    """One run shared by the two tests below (a CLI process costs about a second)."""
    return Cli(cli_env(tmp_path_factory.mktemp("prod"))).run("init-db", PAYAPP_ENV="production")


def test_production_refuses_to_start_without_a_secret_key(production_without_secret):
    result = production_without_secret
    assert result.returncode != 0
    assert "PAYAPP_SECRET_KEY" in result.stderr
    assert "Database is up to date." not in result.stdout


def test_production_refusal_is_a_short_message_without_a_traceback(production_without_secret):
    assert "Traceback" not in production_without_secret.stderr


def test_healthz_reports_ok_once_the_database_is_migrated(migrated_cli: Cli):
    with migrated_cli.web_app().test_client() as browser:
        response = browser.get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.get_data()) == {"status": "ok"}


# --- create-link: input checks and links without contact details --------------------------------


def test_create_link_without_send_needs_no_email_or_phone(migrated_cli: Cli):
    out = migrated_cli.ok("create-link", "--amount", "40.00", "--name", "Jane Doe", "--no-send")

    url = out.strip().splitlines()[-1]
    assert url.startswith(f"{BASE_URL}/pay/"), out
    with migrated_cli.web_app().app_context():
        link = get_session().scalars(select(PaymentLink)).one()
        assert (link.email, link.phone, link.amount_cents) == (None, None, 4000)
    assert not Path(migrated_cli.env["PAYAPP_OUTBOX_DIR"]).exists()


def test_create_link_with_send_still_needs_an_email_or_phone(migrated_cli: Cli):
    result = migrated_cli.run("create-link", "--amount", "40.00", "--name", "Jane Doe", "--send")

    assert_clean_error(result, "Enter an email address or a mobile number")
    with migrated_cli.web_app().app_context():
        assert get_session().scalars(select(PaymentLink)).first() is None


@pytest.mark.parametrize("char", ["\u2028", "\u0085", "\u202e", "\u2066", "\u200b"])
def test_create_link_refuses_invisible_characters_in_the_reference(migrated_cli: Cli, char):
    result = migrated_cli.run(
        *("create-link", "--amount", "40.00", "--name", "Jane Doe", "--send"),
        *("--email", "jane@example.com", "--reference", f"INV{char}1001"),
    )

    assert_clean_error(result, "Remove the invisible or control characters from the reference")
    with migrated_cli.web_app().app_context():
        assert get_session().scalars(select(PaymentLink)).first() is None
    assert not Path(migrated_cli.env["PAYAPP_OUTBOX_DIR"]).exists()


def test_create_link_refuses_a_bidi_override_in_the_name(migrated_cli: Cli):
    result = migrated_cli.run(
        "create-link", "--amount", "40.00", "--name", "Jane \u202eeoD", "--email", "j@example.com"
    )

    assert_clean_error(result, "Remove the invisible or control characters from the patient")


def test_demo_setup_records_the_integrity_baseline_the_security_page_compares_with(cli: Cli):
    from payapp.integrity import BASELINE_KEY
    from payapp.models import SiteSetting

    cli.ok("demo-setup")

    with cli.web_app().app_context():
        baseline = get_session().get(SiteSetting, BASELINE_KEY)
        assert baseline is not None
        recorded = (baseline.value, baseline.updated_at)
    assert "No change since the approved baseline." in cli.ok("check-integrity")
    cli.ok("demo-setup")  # again: the approved baseline stays as it was
    with cli.web_app().app_context():
        again = get_session().get(SiteSetting, BASELINE_KEY)
        assert (again.value, again.updated_at) == recorded
