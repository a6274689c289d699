"""deploy/pg-backup.sh and deploy/pg-restore.sh: a PostgreSQL database with links, payments and
a refund is dumped, restored into a new database, and reads back the same; a restore never
writes over a database that has tables.

The server is the leg's PostgreSQL (PAYAPP_TEST_DATABASE_URL) or a private one started here."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from payapp.db import make_engine, upgrade_schema
from payapp.gateways.demo import DemoGateway
from payapp.links import LinkDraft, LinkRules, create_link
from payapp.models import Payment, PaymentLink, Refund
from payapp.payments import PaymentError, charge_link
from payapp.refunds import refund_payment

from ..support import postgres
from ..support.servers import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    url = postgres.test_server_url()
    if url:
        yield url
        return
    server = postgres.start_postgres()
    try:
        yield server.url()
    finally:
        server.stop()


@pytest.fixture
def new_database(server_url) -> Iterator:
    """Makes new databases on the server; drops them afterwards."""
    made: list[str] = []

    def make() -> str:
        made.append(postgres.create_database(server_url, prefix="bak"))
        return made[-1]

    yield make
    for url in made:
        postgres.drop_database(url)


def run_script(name: str, url: str, *args: str, backup_dir: Path | None = None):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PAYAPP_")},
        "PAYAPP_DATABASE_URL": url,
        "PAYAPP_PG_BIN": str(postgres.PG_BIN),
        **({"PAYAPP_BACKUP_DIR": str(backup_dir)} if backup_dir else {}),
    }
    return subprocess.run(
        [str(REPO_ROOT / "deploy" / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def snapshot(url: str) -> dict:
    """What a clinic would miss: every link, payment and refund, by their fields."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return {
                "links": [
                    (lk.id, lk.public_id, lk.patient_name, lk.amount_cents, lk.status)
                    for lk in session.scalars(select(PaymentLink).order_by(PaymentLink.id))
                ],
                "payments": [
                    (p.id, p.link_id, p.status, p.amount_cents, p.refunded_cents, p.created_at)
                    for p in session.scalars(select(Payment).order_by(Payment.id))
                ],
                "refunds": [
                    (r.id, r.payment_id, r.amount_cents, r.status)
                    for r in session.scalars(select(Refund).order_by(Refund.id))
                ],
            }
    finally:
        engine.dispose()


def make_history(url: str) -> None:
    """Three links: one paid and partly refunded, one declined once, one open."""
    engine = make_engine(url)
    upgrade_schema(engine)
    gateway = DemoGateway()
    with Session(engine, expire_on_commit=False) as session:
        drafts = [("Ana Paid", "125.00"), ("Ben Declined", "40.00"), ("Cy Open", "9.99")]
        rules = LinkRules()
        made = [
            create_link(session, LinkDraft(patient_name=n, email="p@example.com", amount=a), rules)
            for n, a in drafts
        ]
        paid = charge_link(
            session, gateway, made[0], attempt_key="a" * 20, source_id="cnon:card-nonce-ok"
        )
        with pytest.raises(PaymentError):
            charge_link(
                session,
                gateway,
                made[1],
                attempt_key="b" * 20,
                source_id="cnon:card-nonce-declined",
            )
        refund_payment(
            session,
            gateway,
            paid,
            amount_cents=2500,
            reason="overbilled",
            staff_id=None,
            request_key="r" * 20,
        )
    engine.dispose()


def test_a_backup_restored_into_a_new_database_has_the_same_links_payments_and_refunds(
    new_database, tmp_path
):
    live = new_database()
    make_history(live)
    before = snapshot(live)
    assert len(before["links"]) == 3 and len(before["payments"]) == 2 and before["refunds"]

    backed_up = run_script("pg-backup.sh", live, backup_dir=tmp_path / "backups")
    assert backed_up.returncode == 0, backed_up.stderr
    [dump] = (tmp_path / "backups").glob("payapp-*.db.dump")
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600

    restored = new_database()
    result = run_script("pg-restore.sh", restored, str(dump))
    assert result.returncode == 0, result.stderr

    assert snapshot(restored) == before
    # The restored database is a working one: migrations find it at head, links still pay.
    upgrade_schema(make_engine(restored))


def test_a_restore_refuses_a_database_that_already_has_tables(new_database, tmp_path):
    live = new_database()
    make_history(live)
    assert run_script("pg-backup.sh", live, backup_dir=tmp_path).returncode == 0
    [dump] = tmp_path.glob("payapp-*.db.dump")

    result = run_script("pg-restore.sh", live, str(dump))

    assert result.returncode == 1
    assert "refusing to restore" in result.stderr
    assert len(snapshot(live)["links"]) == 3
