"""The Alembic migrations: they build the schema the models describe, and upgrades keep data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from payapp.accounts import create_user
from payapp.db import MIGRATIONS_DIR, make_engine, upgrade_schema
from payapp.links import LinkDraft, LinkRules, create_link
from payapp.models import Base, Message, PaymentLink, StaffUser, described_by_models, utcnow

from ..support.postgres import drop_database, empty_database_url

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_db(tmp_path: Path) -> Iterator[Engine]:
    """The engine payapp itself would make, on a database file that does not exist yet (on the
    PostgreSQL leg, a new empty database)."""
    url = empty_database_url(tmp_path / "migrate.db")
    engine = make_engine(url)
    yield engine
    engine.dispose()
    if url.startswith("postgresql"):
        drop_database(url)


def head_revisions() -> list[str]:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg).get_heads()


def test_upgrading_an_empty_database_creates_every_model_table_at_the_single_head(empty_db):
    heads = head_revisions()
    assert len(heads) == 1, f"the migration history has split into several heads: {heads}"

    upgrade_schema(empty_db)

    tables = {t for t in inspect(empty_db).get_table_names() if described_by_models(t, "table", {})}
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    with empty_db.connect() as conn:
        assert conn.scalars(text("SELECT version_num FROM alembic_version")).all() == heads


def test_upgrading_an_existing_database_again_keeps_its_staff_and_links(empty_db):
    upgrade_schema(empty_db)
    with Session(empty_db) as session:
        create_user(session, "admin@clinic.example.com", "long-enough-password", "admin")
        create_link(
            session,
            LinkDraft(patient_name="Jane Doe", email="jane@example.com", amount="125.00"),
            LinkRules(),
        )

    upgrade_schema(empty_db)

    with Session(empty_db) as session:
        assert session.scalars(select(StaffUser.email)).all() == ["admin@clinic.example.com"]
        [link] = session.scalars(select(PaymentLink)).all()
        assert (link.patient_name, link.amount_cents, link.status) == ("Jane Doe", 12500, "open")


def test_the_migrations_build_exactly_the_schema_the_models_describe(empty_db):
    """A model change without a matching migration fails here, before it fails in production."""
    upgrade_schema(empty_db)

    with empty_db.connect() as conn:
        # compare_type=True as in migrations/env.py; UTCDateTime needs no special case, since
        # Alembic compares a TypeDecorator by its impl (DateTime), which is what migrations use.
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": described_by_models}
        )
        differences = compare_metadata(context, Base.metadata)

    assert differences == [], "models and migrations disagree; add a migration:\n" + "\n".join(
        map(repr, differences)
    )


@pytest.mark.sqlite_only  # SQLite's pragmas (PostgreSQL always checks foreign keys)
def test_sqlite_connections_use_wal_and_refuse_rows_that_point_nowhere(empty_db):
    upgrade_schema(empty_db)

    with empty_db.connect() as conn:
        assert conn.scalar(text("PRAGMA journal_mode")) == "wal"
        assert conn.scalar(text("PRAGMA foreign_keys")) == 1
    with Session(empty_db) as session:
        session.add(
            Message(link_id=999, channel="email", recipient="x@example.com", created_at=utcnow())
        )
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):
            session.commit()


def test_upgrading_from_the_first_release_keeps_links_payments_and_staff(empty_db):
    """A site on revision 0001 with real data upgrades to head without losing a row."""
    from alembic import command

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with empty_db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    with empty_db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO staff_user (id, email, password_hash, role, active, failed_logins, "
                "created_at) VALUES (1, 'old@example.com', 'scrypt:x', 'admin', true, 0, "
                "'2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO payment_link (id, public_id, patient_name, amount_cents, currency, "
                "reference, description, status, expires_at, created_at, decline_count) VALUES "
                "(1, 'pub1', 'Old Patient', 4200, 'USD', 'R-1', '', 'paid', '2026-02-01 00:00:00', "
                "'2026-01-01 00:00:00', 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO payment (id, link_id, idempotency_key, gateway, status, amount_cents, "
                "currency, source_id, postal_code, created_at) VALUES (1, 1, 'k1', 'demo', "
                "'completed', 4200, 'USD', 'cnon:card-nonce-ok', '94103', '2026-01-01 00:00:00')"
            )
        )
        # An authorization voided by an earlier release, stored with Square's spelling.
        conn.execute(
            text(
                "INSERT INTO payment (id, link_id, idempotency_key, gateway, status, amount_cents, "
                "currency, source_id, postal_code, created_at) VALUES (2, 1, 'k2', 'square', "
                "'canceled', 4200, 'USD', 'cnon:card-nonce-ok', '94103', '2026-01-01 00:00:00')"
            )
        )
    upgrade_schema(empty_db)
    with Session(empty_db) as session:
        assert session.get(StaffUser, 1).email == "old@example.com"
        assert session.get(StaffUser, 1).can_refund is False
        link = session.get(PaymentLink, 1)
        assert (link.patient_name, link.amount_cents, link.status) == ("Old Patient", 4200, "paid")
        payment = link.payments[0]
        assert (payment.amount_cents, payment.refunded_cents) == (4200, 0)
        # One spelling everywhere: the voided attempt now reads "cancelled", like a link.
        assert [p.status for p in link.payments] == ["completed", "cancelled"]
        assert link.completed_payment is payment


def test_upgrading_to_the_dashboard_rollup_makes_it_exact_from_the_first_view(empty_db):
    """0012 adds the rollup to a database full of history: it marks every hour with data, so
    the first dashboard (or run-jobs) builds every day, and the figures are the live ones."""
    from datetime import UTC, datetime

    from alembic import command

    from payapp import metrics
    from payapp.cli import seed_demo

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with empty_db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0010")
    now = datetime(2026, 11, 5, 12, tzinfo=UTC)
    with Session(empty_db) as session:
        seed_demo(session, 300, now)
    upgrade_schema(empty_db)
    with Session(empty_db) as session:
        assert session.scalar(text("SELECT count(*) FROM dashboard_dirty")) > 90
        period = metrics.period_for("90", now, "America/New_York")[1]
        rolled = metrics.dashboard(session, period, now)
        live = metrics.live_dashboard(session, period, now)
        assert rolled.funnel.created > 250 and rolled.paid_cents > 0
        assert (rolled.funnel, rolled.collected_cents, rolled.trend, rolled.declines) == (
            live.funnel,
            live.collected_cents,
            live.trend,
            live.declines,
        )


def test_upgrading_to_0013_puts_existing_links_in_the_search_index(empty_db):
    """Links made before the full-text index are found by it after the upgrade (its backfill)."""
    from alembic import command

    from payapp.links import list_links

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with empty_db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0010")
    with empty_db.begin() as conn:
        for i, (name, ref) in enumerate((("Old Patient", "ST-0001"), ("Ada Lovelace", "ST-0002"))):
            conn.execute(
                text(
                    "INSERT INTO payment_link (public_id, patient_name, amount_cents, currency,"
                    " reference, description, status, expires_at, created_at, decline_count)"
                    " VALUES (:p, :n, 4200, 'USD', :r, '', 'open', '2026-02-01 00:00:00',"
                    " :c, 0)"
                ),
                {"p": f"pub{i}", "n": name, "r": ref, "c": f"2026-01-0{i + 1} 00:00:00"},
            )
    upgrade_schema(empty_db)
    with Session(empty_db) as session:
        assert [x.patient_name for x in list_links(session, query="lovelace").links] == [
            "Ada Lovelace"
        ]
        assert [x.reference for x in list_links(session, query="st-000").links] == [
            "ST-0002",
            "ST-0001",
        ]
        if empty_db.dialect.name == "sqlite":  # FTS5's own check of its index against the rows
            session.execute(
                text(
                    "INSERT INTO payment_link_search (payment_link_search)"
                    " VALUES ('integrity-check')"
                )
            )


def test_upgrading_to_0018_gives_existing_links_english_and_keeps_the_search_triggers(empty_db):
    """0018 adds payment_link.language: links made before it read English, and a link added
    after it is still indexed (on SQLite the column is added without copying the table)."""
    from alembic import command

    from payapp.links import list_links

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with empty_db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0017")
    with empty_db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO payment_link (public_id, patient_name, amount_cents, currency,"
                " reference, description, status, expires_at, created_at, decline_count,"
                " reminders_sent) VALUES ('pub0', 'Old Patient', 4200, 'USD', 'ST-0001', '',"
                " 'open', '2026-02-01 00:00:00', '2026-01-01 00:00:00', 0, 0)"
            )
        )
    upgrade_schema(empty_db)
    with Session(empty_db) as session:
        assert session.scalars(select(PaymentLink.language)).all() == ["en"]
        create_link(
            session,
            LinkDraft(patient_name="Nueva Paciente", amount="10", send_now=False, language="es"),
            LinkRules(),
        )
        assert [x.language for x in list_links(session, query="nueva").links] == ["es"]
        if empty_db.dialect.name == "sqlite":
            session.execute(
                text(
                    "INSERT INTO payment_link_search (payment_link_search)"
                    " VALUES ('integrity-check')"
                )
            )


def _trigger_names(engine) -> set[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        else:
            query = "SELECT trigger_name FROM information_schema.triggers"
        return set(conn.execute(text(query)).scalars())


def test_upgrading_to_0021_keeps_links_findable_by_name_and_every_trigger(empty_db):
    """0021 adds payment_link.postal_code: links made before it have none and are still found by
    last name; the column is added without copying the table, so 0012/0013's triggers stay."""
    from alembic import command

    from payapp import lookup
    from payapp.links import list_links

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with empty_db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0018")
    triggers = _trigger_names(empty_db)
    assert triggers  # the rollup's and the search index's
    with empty_db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO payment_link (public_id, patient_name, amount_cents, currency,"
                " reference, description, status, expires_at, created_at, decline_count,"
                " reminders_sent) VALUES ('pub0', 'Old Patient', 4200, 'USD', 'ST-0001', '',"
                " 'open', '2999-02-01 00:00:00', '2026-01-01 00:00:00', 0, 0)"
            )
        )
    upgrade_schema(empty_db)
    assert _trigger_names(empty_db) == triggers
    with Session(empty_db) as session:
        assert session.scalars(select(PaymentLink.postal_code)).all() == [None]
        old = lookup.find_by_statement(session, lookup.clean_query("ST-0001", "Patient"))
        assert old is not None and old.public_id == "pub0"
        assert lookup.find_by_statement(session, lookup.clean_query("ST-0001", "10027")) is None
        create_link(
            session,
            LinkDraft(
                patient_name="New Patient",
                amount="10",
                reference="ST-0002",
                send_now=False,
                postal_code="10027",
            ),
            LinkRules(),
        )
        assert [x.postal_code for x in list_links(session, query="ST-0002").links] == ["10027"]
        found = lookup.find_by_statement(session, lookup.clean_query("ST-0002", "10027"))
        assert found is not None and found.patient_name == "New Patient"


def test_upgrading_to_0020_keeps_payments_unnamed_and_the_rollup_triggers(empty_db):
    """0020 adds payment.wallet: payments made before it name no wallet, and a payment written
    after it still marks the dashboard's hours (on SQLite the column is added in place)."""
    from alembic import command

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with empty_db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0018")
    with empty_db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO payment_link (public_id, patient_name, amount_cents, currency,"
                " reference, description, status, expires_at, created_at, decline_count,"
                " reminders_sent, language) VALUES ('pub0', 'Old Patient', 4200, 'USD',"
                " 'ST-0001', '', 'paid', '2026-02-01 00:00:00', '2026-01-01 00:00:00', 0, 0,"
                " 'es')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO payment (link_id, idempotency_key, gateway, status, amount_cents,"
                " currency, source_id, postal_code, card_brand, card_last4, created_at,"
                " completed_at) SELECT id, 'k-old', 'demo', 'completed', 4200, 'USD',"
                " 'cnon:card-nonce-ok', '', 'VISA', '1111', '2026-01-02 10:00:00',"
                " '2026-01-02 10:00:05' FROM payment_link"
            )
        )
    upgrade_schema(empty_db)
    with Session(empty_db) as session:
        assert session.execute(text("SELECT wallet, card_last4 FROM payment")).all() == [
            (None, "1111")
        ]
        session.execute(text("DELETE FROM dashboard_dirty"))
        session.execute(
            text(
                "INSERT INTO payment (link_id, idempotency_key, gateway, status, amount_cents,"
                " currency, source_id, postal_code, wallet, created_at) SELECT id, 'k-new',"
                " 'demo', 'pending', 4200, 'USD', 'cnon:demo-apple-pay-ok', '', 'apple_pay',"
                " '2026-03-05 10:00:00' FROM payment_link"
            )
        )
        assert session.scalar(text("SELECT count(*) FROM dashboard_dirty")) >= 1


def test_upgrading_to_0019_fills_what_each_link_was_paid_and_keeps_the_triggers(empty_db):
    """0019 adds min_payment_cents (NULL: whole amount only) and paid_cents, filled from each
    link's completed payments (a link paid twice holds both); the dashboard and search triggers
    still fire on the table afterwards (plain ALTER TABLE, no copy)."""
    from alembic import command

    from payapp import payments
    from payapp.gateways.demo import DemoGateway

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with empty_db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0018")
    link_sql = (
        "INSERT INTO payment_link (public_id, patient_name, amount_cents, currency,"
        " reference, description, status, expires_at, created_at, decline_count,"
        " reminders_sent, language) VALUES (:pub, 'Old Patient', 4200, 'USD', 'ST-1', '',"
        " :status, '2026-02-01 00:00:00', '2026-01-01 00:00:00', 0, 0, 'en')"
    )
    payment_sql = (
        "INSERT INTO payment (link_id, idempotency_key, gateway, status, amount_cents,"
        " currency, source_id, postal_code, refunded_cents, created_at)"
        " VALUES ((SELECT id FROM payment_link WHERE public_id = :link), :key, 'demo',"
        " :status, 4200, 'USD', 'x', '', 0, '2026-01-02 00:00:00')"
    )
    with empty_db.begin() as conn:
        for id_, status in ((1, "open"), (2, "paid"), (3, "paid")):
            conn.execute(text(link_sql), {"pub": f"pub{id_}", "status": status})
        for link_id, key, status in (
            (1, "k1", "failed"),
            (2, "k2", "completed"),
            (3, "k3a", "completed"),
            (3, "k3b", "completed"),
        ):
            conn.execute(text(payment_sql), {"link": f"pub{link_id}", "key": key, "status": status})
        conn.execute(text("DELETE FROM dashboard_dirty"))
    upgrade_schema(empty_db)
    with Session(empty_db) as session:
        found = session.execute(
            select(
                PaymentLink.public_id, PaymentLink.paid_cents, PaymentLink.min_payment_cents
            ).order_by(PaymentLink.public_id)
        ).all()
        assert [tuple(r) for r in found] == [
            ("pub1", 0, None),
            ("pub2", 4200, None),
            ("pub3", 8400, None),
        ]
        link = create_link(
            session,
            LinkDraft(patient_name="Nueva Parte", amount="200", min_payment="50", send_now=False),
            LinkRules(),
        )
        payments.charge_link(
            session,
            DemoGateway(),
            link,
            attempt_key="attempt-key-0019-0001",
            source_id="cnon:card-nonce-ok",
            amount_cents=5000,
        )
        session.refresh(link)
        assert (link.paid_cents, link.status) == (5000, "open")
        # The dashboard triggers marked the new writes; the search index found the new link.
        assert session.scalar(text("SELECT count(*) FROM dashboard_dirty")) > 0
        from payapp.links import list_links

        assert [x.id for x in list_links(session, query="nueva").links] == [link.id]
