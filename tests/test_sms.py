"""The text itself (one GSM-7 segment, nothing clinical), the reply keywords, and texting hours
in the clinic's time zone (payapp/sms.py, config.parse_text_hours)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from payapp import notify, reminders
from payapp.clinic import Clinic
from payapp.config import ConfigError, parse_text_hours
from payapp.db import get_session
from payapp.links import link_url
from payapp.models import PaymentLink
from payapp.sms import carrier_error_text, keyword_of, within_text_hours

# GSM 03.38 basic character set: a text of these alone fits 160 to a segment.
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


@pytest.fixture
def config_overrides():
    return {"PUBLIC_BASE_URL": "https://pay.brightsmile.com"}


def text_for(app, link_factory, amount="25000.00", description="root canal follow-up"):
    link = link_factory(phone="(212) 555-0123", amount=amount, description=description)
    with app.app_context():
        row = get_session().get(PaymentLink, link.id)
        url = link_url(app.config["PUBLIC_BASE_URL"], row, app.config["SECRET_KEY"])
        return notify.compose_sms(app.jinja_env, row, url, Clinic.from_config(app.config)), url


def test_the_text_is_one_gsm7_segment_with_clinic_amount_link_and_stop(app, link_factory):
    body, url = text_for(app, link_factory)  # the largest amount staff may ask for

    assert body == f"Bright Smile Dental $25,000.00: {url} Reply STOP to opt out"
    assert len(body) <= 160 and set(body) <= GSM7
    assert url.startswith("https://pay.brightsmile.com/pay/")  # the clinic's own domain


def test_the_text_never_carries_the_description_or_the_patient_name(app, link_factory):
    body, _ = text_for(app, link_factory)
    assert "root canal" not in body and "Jane" not in body


def test_the_clinic_name_length_that_still_fits_one_segment(app, link_factory):
    """How long a clinic name may be for every text to stay one segment: at least 20 characters
    with this domain (longer names make two segments, still one message on the phone)."""
    body, _ = text_for(app, link_factory)
    room = 160 - (len(body) - len("Bright Smile Dental"))
    print(f"room for the clinic name: {room} characters, with {len(body)} now")
    assert room >= 20


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", "stop"),
        (" stop ", "stop"),
        ("Unsubscribe", "stop"),
        ("START", "start"),
        ("unstop", "start"),
        ("help", "help"),
        ("ALTO", "stop"),
        ("Parar.", "stop"),
        ("cancelar", "stop"),
        ("Comenzar", "start"),
        ("ayuda", "help"),
        ("alto por favor, ya pagué", None),
        ("stop texting me about my crown", None),
        ("", None),
    ],
)
def test_reply_keywords(body, keyword):
    assert keyword_of(body) == keyword


NY = "America/New_York"


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        (datetime(2026, 12, 7, 13, 0, tzinfo=UTC), True),  # Monday 8:00 EST
        (datetime(2026, 12, 7, 12, 59, tzinfo=UTC), False),  # Monday 7:59 EST
        (datetime(2026, 12, 7, 23, 0, tzinfo=UTC), False),  # Monday 18:00 EST: closed
        (datetime(2026, 12, 5, 17, 0, tzinfo=UTC), False),  # Saturday noon
        (datetime(2027, 3, 15, 12, 30, tzinfo=UTC), True),  # Monday 8:30 EDT, after the DST change
        (datetime(2027, 3, 12, 12, 30, tzinfo=UTC), False),  # Friday 7:30 EST, before it
    ],
)
def test_texting_hours_are_the_clinics_local_hours(when, inside):
    assert within_text_hours(when, NY, "08:00-18:00", "Mon-Fri") is inside


def test_empty_hours_mean_any_time():
    saturday_night = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    assert within_text_hours(saturday_night, NY, "", "Mon-Fri")


def test_days_may_wrap_and_be_listed():
    assert parse_text_hours("09:00-12:30", "Sat-Mon")[2] == {5, 6, 0}
    assert parse_text_hours("09:00-12:30", "Mon,Wed") == (540, 750, {0, 2})


@pytest.mark.parametrize(
    ("hours", "days"), [("8-18", "Mon-Fri"), ("18:00-08:00", "Mon-Fri"), ("08:00-18:00", "Mo-Fr")]
)
def test_bad_texting_hours_refuse_to_start(hours, days, tmp_path, monkeypatch):
    from payapp import create_app

    monkeypatch.setenv("PAYAPP_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="TEXT_HOURS"):
        create_app({"TESTING": True, "TEXT_HOURS": hours, "TEXT_DAYS": days})


@pytest.mark.parametrize(
    "settings",
    [
        {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "t" * 32},  # no sender
        {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_FROM": "+15005550006"},  # no token
    ],
)
def test_half_a_twilio_setup_refuses_to_start(settings, tmp_path, monkeypatch):
    from payapp import create_app

    monkeypatch.setenv("PAYAPP_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="PAYAPP_TWILIO_AUTH_TOKEN and PAYAPP_TWILIO_FROM"):
        create_app({"TESTING": True, **settings})


def test_carrier_errors_in_words_staff_can_act_on():
    assert "possible spam" in carrier_error_text("30007")
    assert "switched off" in carrier_error_text("30003")
    assert "(no code)" in carrier_error_text(None)


def test_a_reminder_text_says_reply_stop_and_fits_two_segments_at_the_longest(app, link_factory):
    """The reminder email's "stop reminders" link has no room in a text (with it, the longest
    reference makes three segments): the text says how to stop texts instead."""
    link = link_factory(phone="(212) 555-0123", amount="25000.00", reference="R" * 40)
    with app.app_context():
        row = get_session().get(PaymentLink, link.id)
        url = link_url(app.config["PUBLIC_BASE_URL"], row, app.config["SECRET_KEY"])
        body = notify.compose_reminder_sms(app.jinja_env, row, url, Clinic.from_config(app.config))
        opt_out = reminders.opt_out_url(
            app.config["PUBLIC_BASE_URL"], row, app.config["SECRET_KEY"]
        )
    assert body.strip().endswith("Reply STOP to opt out") and "/reminders/stop/" not in body
    assert len(body.strip()) <= 320 and set(body.strip()) <= GSM7
    assert len(body.strip()) + len(f" Stop reminders: {opt_out}") > 320


# --- the Spanish texts (issue 11): the same segment rules, in GSM-7 -----------------------------
# Spanish á í ó ú are not GSM-7 (é ñ ü ¿ are): one of them would make the whole text UCS-2, 70
# characters a segment. The Spanish is worded to need none of them, and these tests prove it at
# the longest values: the largest amount, a 40-character statement number, the longest month
# ("septiembre"), the longest card brand.
SEPTEMBER = datetime(2026, 9, 2, 14, 0, tzinfo=UTC)  # the link expires on 30 de septiembre


def longest_texts(app, link_factory, language: str) -> dict[str, str]:
    """Each text a patient can get, at its longest, through notify's own composing."""
    from payapp.models import Payment, Refund

    with time_machine.travel(SEPTEMBER, tick=False):
        made = link_factory(
            phone="(212) 555-0123",
            amount="25000.00",
            reference="R" * 40,
            language=language,
            expires_in_days="28",
        )
    with app.app_context():
        session = get_session()
        link = session.get(PaymentLink, made.id)
        clinic = Clinic.from_config(app.config)
        url = link_url(app.config["PUBLIC_BASE_URL"], link, app.config["SECRET_KEY"])
        # A part payment first (issue 11): its receipt also says the balance left.
        part = Payment(
            idempotency_key=f"p-{language}",
            gateway="demo",
            status="completed",
            amount_cents=link.amount_cents // 2,
            currency="USD",
            source_id="cnon:card-nonce-ok",
            card_brand="AMERICAN_EXPRESS",
            card_last4="0002",
            receipt_number="P" + "8" * 9,
            completed_at=datetime(2026, 9, 29, 15, 0, tzinfo=UTC),
        )
        link.payments.append(part)
        payment = Payment(
            idempotency_key=f"k-{language}",
            gateway="demo",
            status="completed",
            amount_cents=link.amount_cents,
            currency="USD",
            source_id="cnon:card-nonce-ok",
            card_brand="AMERICAN_EXPRESS",
            card_last4="0002",
            receipt_number="P" + "9" * 9,
            completed_at=datetime(2026, 9, 30, 15, 0, tzinfo=UTC),
        )
        link.payments.append(payment)  # the rest: its receipt has no balance line
        session.flush()
        refund = Refund(
            payment_id=payment.id,
            amount_cents=payment.amount_cents,
            status="completed",
            idempotency_key=f"r-{language}",
            created_at=datetime(2026, 9, 30, 16, 0, tzinfo=UTC),
        )
        session.add(refund)
        session.flush()
        texts = {
            "link": notify.compose_sms(app.jinja_env, link, url, clinic),
            "reminder": notify.compose_reminder_sms(app.jinja_env, link, url, clinic),
            "receipt": notify.compose_notice_sms(
                app.jinja_env, notify.receipt_notice(payment, clinic)
            ),
            "part_receipt": notify.compose_notice_sms(
                app.jinja_env, notify.receipt_notice(part, clinic)
            ),
            "refund": notify.compose_notice_sms(
                app.jinja_env, notify.refund_notice(refund, clinic)
            ),
        }
        session.rollback()
    return {kind: body.strip() for kind, body in texts.items()}


# The rule each text keeps, in segments of GSM-7 characters: one holds 160; longer texts go as
# concatenated segments of 153. A refund notice had no rule of its own: at its longest it is two
# in English too. A part payment's receipt also says the balance left: two at its longest.
SEGMENT_RULES = {"link": 1, "reminder": 2, "receipt": 1, "part_receipt": 2, "refund": 2}


def segments(body: str) -> int:
    return 1 if len(body) <= 160 else -(-len(body) // 153)


@pytest.mark.parametrize("language", ["en", "es"])
def test_every_text_in_either_language_is_gsm7_within_its_segment_rule(app, link_factory, language):
    texts = longest_texts(app, link_factory, language)
    for kind, body in texts.items():
        print(f"{language} {kind}: {len(body)} characters, {segments(body)} segment(s): {body}")
        assert set(body) <= GSM7, f"{kind}: not GSM-7: {set(body) - GSM7}"
        assert segments(body) <= SEGMENT_RULES[kind], f"{kind}: {len(body)} characters: {body}"


def test_the_spanish_texts_are_spanish(app, link_factory):
    texts = longest_texts(app, link_factory, "es")
    assert texts["link"].endswith("Responda STOP para salir")
    assert "recuerde pagar $25,000.00" in texts["reminder"]
    assert "30 de septiembre de 2026" in texts["reminder"]
    assert "recibimos $25,000.00 el 30 de septiembre de 2026" in texts["receipt"]
    assert "American Express terminada en 0002" in texts["receipt"]
    assert "le devolvimos $25,000.00" in texts["refund"] and "semanas" in texts["refund"]
    for body in texts.values():
        assert "Reply STOP" not in body and "Call" not in body and "September" not in body
