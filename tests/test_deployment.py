"""check-deployment tells the clinic's IT person what is not yet production-ready."""

import os
import runpy
import subprocess
import time
from pathlib import Path

import pytest

from payapp import deployment
from payapp.db import get_session

ROOT = Path(__file__).resolve().parents[1]


def checks_by_name(app):
    with app.app_context():
        return {c.name: c for c in deployment.run_checks(app.config, get_session())}


def test_a_weak_secret_is_flagged(app):
    # The suite's own secret is long but repetitive (few distinct characters).
    check = checks_by_name(app)["Secret key"]
    assert not check.ok and "token_hex(32)" in check.detail


STRONG = {"SECRET_KEY": "9f2c4e7a1b3d5f60" * 4}


@pytest.mark.parametrize("config_overrides", [STRONG])
def test_a_demo_install_lists_what_to_do(app):
    checks = checks_by_name(app)
    assert not checks["HTTPS"].ok and "PAYAPP_ENV=production" in checks["HTTPS"].detail
    assert not checks["Square"].ok and checks["Square"].detail == "demo mode"
    assert not checks["Email"].ok and "PAYAPP_SMTP_URL" in checks["Email"].detail
    assert not checks["Backups"].ok and "deploy/backup.sh" in checks["Backups"].detail
    assert not checks["Security review"].ok
    assert checks["Secret key"].ok


@pytest.mark.parametrize("config_overrides", [{"SMTP_URL": "smtps://u:p@mail.example:465"}])
def test_fresh_backups_and_a_recent_review_pass(app):
    folder = Path(app.config["BACKUP_DIR"])
    folder.mkdir(parents=True)
    (folder / "payapp-20261126T021500Z.db").write_bytes(b"x")
    with app.app_context():
        deployment.record_review(get_session(), "it@clinic.example")
    checks = checks_by_name(app)
    assert checks["Backups"].ok and checks["Security review"].ok and checks["Email"].ok


def test_old_backups_are_flagged(app):
    folder = Path(app.config["BACKUP_DIR"])
    folder.mkdir(parents=True)
    old = folder / "payapp-20260101T000000Z.db"
    old.write_bytes(b"x")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    assert not checks_by_name(app)["Backups"].ok


@pytest.mark.sqlite_only  # deploy/backup.sh copies the SQLite file; pg-backup.sh has its own test
def test_the_backup_script_makes_a_usable_copy(tmp_path, app):
    db = Path(app.config["DATABASE_URL"].removeprefix("sqlite:///"))
    env = {**os.environ, "PAYAPP_DB_FILE": str(db), "PAYAPP_BACKUP_DIR": str(tmp_path / "b")}
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "backup.sh")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    [copy] = list((tmp_path / "b").glob("payapp-*.db"))
    import sqlite3

    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT count(*) FROM staff_user").fetchone()[0] == 2


@pytest.mark.parametrize(
    ("settings", "ok", "says"),
    [
        ({"RATELIMIT_STORAGE_URI": "sqlite:////srv/i/ratelimits.db"}, True, "shared by this"),
        ({"RATELIMIT_STORAGE_URI": "redis://10.0.0.5:6379"}, True, "counted in redis"),
        ({"RATELIMIT_STORAGE_URI": "memory://"}, False, "each gunicorn process"),
        ({"RATELIMIT_STORAGE_URI": "sqlite:////x.db", "RATELIMIT_ENABLED": False}, False, "off"),
    ],
)
def test_rate_limits_must_be_on_and_shared_by_the_processes(settings, ok, says):
    check = deployment.rate_limit_check(settings)
    assert (check.ok, check.name) == (ok, "Rate limits")
    assert says in check.detail


def test_the_default_rate_limit_store_passes(app):
    # The suite turns limits off; the default store itself is what production gets.
    check = deployment.rate_limit_check({**app.config, "RATELIMIT_ENABLED": True})
    assert check.ok and "file shared" in check.detail


@pytest.mark.parametrize("config_overrides", [STRONG])
def test_check_deployment_command_exits_nonzero_until_ready(app, runner):
    with app.app_context():
        result = runner.invoke(args=["check-deployment"])
    assert result.exit_code != 0
    assert "TODO  HTTPS" in result.output and "OK    Secret key" in result.output


# --- Twilio --------------------------------------------------------------------------------------

SID = "AC" + "0123456789abcdef" * 2
SERVICE = "MG" + "fedcba9876543210" * 2
TWILIO = {
    "TWILIO_ACCOUNT_SID": SID,
    "TWILIO_AUTH_TOKEN": "a" * 32,
    "TWILIO_FROM": "+15551234567",
    "TWILIO_MESSAGING_SERVICE_SID": None,
    "TWILIO_WEBHOOK_URL": "https://pay.clinic.example/webhooks/twilio",
    "TEXT_HOURS": "08:00-18:00",
    "TEXT_DAYS": "Mon-Fri",
}


def twilio(**changes):
    return {c.name: c for c in deployment.twilio_checks({**TWILIO, **changes})}


def test_a_complete_twilio_set_up_passes_and_names_the_webhook_to_enter():
    checks = twilio()
    assert all(c.ok for c in checks.values()), checks
    assert set(checks) == {"Twilio account SID", "Twilio sender", "Twilio webhook", "Texting hours"}
    assert "https://pay.clinic.example/webhooks/twilio" in checks["Twilio webhook"].detail
    assert "Twilio console" in checks["Twilio webhook"].detail


def test_without_twilio_texts_stay_in_the_outbox_and_that_is_fine():
    checks = twilio(TWILIO_ACCOUNT_SID=None, TWILIO_AUTH_TOKEN=None, TWILIO_FROM=None)
    assert list(checks) == ["Texts"] and checks["Texts"].ok
    assert "outbox" in checks["Texts"].detail


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ({"TWILIO_AUTH_TOKEN": None}, "PAYAPP_TWILIO_AUTH_TOKEN"),
        ({"TWILIO_ACCOUNT_SID": ""}, "PAYAPP_TWILIO_ACCOUNT_SID"),
        ({"TWILIO_FROM": None}, "PAYAPP_TWILIO_FROM or PAYAPP_TWILIO_MESSAGING_SERVICE_SID"),
    ],
)
def test_half_a_twilio_set_up_names_what_is_missing(missing, named):
    checks = twilio(**missing)
    assert list(checks) == ["Twilio settings"]
    assert not checks["Twilio settings"].ok
    assert f"{named} not set" in checks["Twilio settings"].detail


@pytest.mark.parametrize(
    "sid", ["SK" + "0" * 32, "AC" + "0" * 31, "AC" + "0" * 33, "AC" + "G" * 32, "ac" + "0" * 32]
)
def test_a_malformed_account_sid_is_flagged(sid):
    check = twilio(TWILIO_ACCOUNT_SID=sid)["Twilio account SID"]
    assert not check.ok and "AC followed by 32 hex" in check.detail


@pytest.mark.parametrize("number", ["5551234567", "+1 555 123 4567", "+0551234567", "(555) 1234"])
def test_a_sending_number_not_in_e164_is_flagged(number):
    check = twilio(TWILIO_FROM=number)["Twilio sender"]
    assert not check.ok and "+15551234567" in check.detail


def test_a_messaging_service_is_checked_instead_of_the_number():
    assert twilio(TWILIO_FROM=None, TWILIO_MESSAGING_SERVICE_SID=SERVICE)["Twilio sender"].ok
    bad = twilio(TWILIO_FROM=None, TWILIO_MESSAGING_SERVICE_SID="MG123")["Twilio sender"]
    assert not bad.ok and "MG followed by 32 hex" in bad.detail


def test_a_plain_http_webhook_address_is_flagged():
    check = twilio(TWILIO_WEBHOOK_URL="http://10.0.0.5:8000/webhooks/twilio")["Twilio webhook"]
    assert not check.ok and "https://" in check.detail and "signs the exact" in check.detail


@pytest.mark.parametrize(
    ("hours", "days", "says"),
    [
        ("", "Mon-Fri", "any hour"),
        ("07:00-18:00", "Mon-Fri", "before 08:00 or after 21:00"),
        ("08:00-22:30", "Mon-Fri", "before 08:00 or after 21:00"),
        ("8am-6pm", "Mon-Fri", "08:00-18:00"),
        ("08:00-18:00", "Weekdays", "Mon-Fri"),
    ],
)
def test_texting_hours_outside_the_day_or_unreadable_are_flagged(hours, days, says):
    check = twilio(TEXT_HOURS=hours, TEXT_DAYS=days)["Texting hours"]
    assert not check.ok and says in check.detail


@pytest.mark.parametrize(
    "config_overrides",
    [
        {
            **STRONG,
            "TWILIO_ACCOUNT_SID": "AC123",
            "TWILIO_AUTH_TOKEN": "t" * 32,
            "TWILIO_FROM": "+15551234567",
        }
    ],
)
def test_check_deployment_lists_the_twilio_lines(app, runner):
    with app.app_context():
        result = runner.invoke(args=["check-deployment"])
    assert result.exit_code != 0
    assert "TODO  Twilio account SID: PAYAPP_TWILIO_ACCOUNT_SID must be AC" in result.output
    # The suite's app answers on http://, which Twilio's signature cannot be checked against.
    assert "TODO  Twilio webhook:" in result.output
    assert "OK    Twilio sender: number +15551234567" in result.output


# --- gunicorn's processes -------------------------------------------------------------------------

SQUARE_KEYS = (
    'SQUARE_ACCESS_TOKEN = "EAAAl-test"\n'
    'SQUARE_APPLICATION_ID = "sandbox-sq0idb-test"\n'
    'SQUARE_LOCATION_ID = "L-TEST"\n'
)


def test_gunicorn_runs_workers_processes_with_square_and_one_in_demo_mode(tmp_path, monkeypatch):
    instance = tmp_path / "instance"
    instance.mkdir()
    monkeypatch.setenv("PAYAPP_INSTANCE_PATH", str(instance))
    for name in ("PAYAPP_WORKERS", "PAYAPP_SQUARE_ACCESS_TOKEN", "PAYAPP_SQUARE_APPLICATION_ID"):
        monkeypatch.delenv(name, raising=False)
    conf = str(ROOT / "deploy" / "gunicorn.conf.py")
    # Demo mode: the demo gateway's payments live in one process's memory.
    assert runpy.run_path(conf)["workers"] == 1
    (instance / "config.py").write_text(SQUARE_KEYS)
    settings = runpy.run_path(conf)
    assert (settings["workers"], settings["threads"]) == (2, 4)
    (instance / "config.py").write_text(SQUARE_KEYS + "WORKERS = 4\n")
    assert runpy.run_path(conf)["workers"] == 4
    monkeypatch.setenv("PAYAPP_WORKERS", "3")
    assert runpy.run_path(conf)["workers"] == 3


def test_each_gunicorn_process_freezes_what_the_app_loaded_out_of_the_collectors_sight():
    import gc

    settings = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    assert gc.get_freeze_count() == 0
    try:
        settings["post_worker_init"](None)
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # this test process's modules and objects
        assert gc.collect(2) >= 0 and gc.get_freeze_count() == frozen  # a collection leaves them
    finally:
        gc.unfreeze()
