"""check-deployment tells the clinic's IT person what is not yet production-ready."""

import os
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


@pytest.mark.parametrize("config_overrides", [STRONG])
def test_check_deployment_command_exits_nonzero_until_ready(app, runner):
    with app.app_context():
        result = runner.invoke(args=["check-deployment"])
    assert result.exit_code != 0
    assert "TODO  HTTPS" in result.output and "OK    Secret key" in result.output
