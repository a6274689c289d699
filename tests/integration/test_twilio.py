"""Texting for real (issue 9): the real ``twilio`` SDK against the local Twilio stand-in, and the
signed webhook Twilio calls back with delivery statuses and the patient's STOP/START/HELP."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy import select, update

from payapp import notify, texting
from payapp.clinic import Clinic
from payapp.db import get_session
from payapp.models import Message, PaymentLink, SmsOptOut
from payapp.sms import TwilioSms

from ..conftest import audit_actions
from ..support.twilio_standin import TwilioStandin

pytestmark = pytest.mark.integration

SITE = "https://pay.brightsmile.example"
WEBHOOK = "/webhooks/twilio"
PATIENT = "+12125550123"
# A Saturday noon and the Monday 9:00 after it, New York time (the clinic's zone).
SATURDAY_NOON = datetime(2026, 12, 5, 17, 0, tzinfo=UTC)
MONDAY_NINE = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)


@pytest.fixture
def twilio():
    with TwilioStandin() as standin:
        yield standin


@pytest.fixture
def config_overrides(twilio):
    return {**twilio.config(), "PUBLIC_BASE_URL": SITE}


def text_link(link_factory, phone="(212) 555-0123"):
    return link_factory(email="", phone=phone)


def send(app, link_id, *, now=None):
    """send_link as staff's "Send" does it; returns the text's message row as a dict."""
    with app.app_context():
        session = get_session()
        [message] = notify.send_link(
            session,
            app.jinja_env,
            notify.Transports.from_config(app.config),
            session.get(PaymentLink, link_id),
            f"{SITE}/pay/token",
            Clinic.from_config(app.config),
            now=now,
        )
        return row(app, message.id)


def row(app, message_id):
    with app.app_context():
        m = get_session().get(Message, message_id)
        return {
            "status": m.status,
            "error": m.error,
            "provider_id": m.provider_id,
            "delivery_status": m.delivery_status,
            "error_code": m.error_code,
            "attempts": m.attempts,
        }


def post_signed(client, signed):
    url, form, headers = signed
    assert url == SITE + WEBHOOK  # what payapp told Twilio, and what it checks signatures over
    return client.post(WEBHOOK, data=form, headers=headers)


def run_jobs(app, runner, when):
    with time_machine.travel(when, tick=False), app.app_context():
        result = runner.invoke(args=["run-jobs"])
    assert result.exit_code == 0, result.output
    return result.output


def opted_out(app, phone=PATIENT) -> bool:
    with app.app_context():
        return get_session().get(SmsOptOut, phone) is not None


def test_twilio_is_chosen_when_configured_and_the_outbox_otherwise(app, twilio):
    assert isinstance(notify.Transports.from_config(app.config).sms, TwilioSms)
    without = {**app.config, "TWILIO_ENABLED": False}
    assert isinstance(notify.Transports.from_config(without).sms, notify.OutboxSms)


def test_a_text_goes_out_through_twilio_and_its_delivery_is_recorded(
    app, client, twilio, link_factory
):
    link = text_link(link_factory)

    sent = send(app, link.id)

    [taken] = twilio.sent
    assert sent["status"] == "sent" and sent["provider_id"] == taken["sid"]
    assert taken["to"] == PATIENT and taken["from"] == "+15005550006"
    assert taken["status_callback"] == SITE + WEBHOOK
    assert "Bright Smile Dental $125.00: " in taken["body"]
    assert f"{SITE}/pay/token" in taken["body"] and taken["body"].endswith("Reply STOP to opt out")

    response = post_signed(client, twilio.status_callback(taken["sid"], "delivered"))
    assert response.status_code == 200 and response.mimetype == "text/xml"
    # A late "sent" callback does not undo "delivered".
    post_signed(client, twilio.status_callback(taken["sid"], "sent"))
    assert row(app, 1)["delivery_status"] == "delivered"
    assert "sms.delivered" in audit_actions(app)


def test_a_messaging_service_is_used_instead_of_a_from_number(app, twilio, link_factory):
    app.config["TWILIO_MESSAGING_SERVICE_SID"] = "MG" + "1" * 32
    send(app, text_link(link_factory).id)
    [taken] = twilio.sent
    assert taken["messaging_service_sid"] == "MG" + "1" * 32 and taken["from"] is None


def test_a_number_twilio_calls_invalid_is_recorded_failed_with_its_code(
    app, staff, twilio, link_factory
):
    link = text_link(link_factory)
    with app.app_context():  # Twilio's magic "invalid number" (phonenumbers would refuse it)
        get_session().execute(
            update(PaymentLink).where(PaymentLink.id == link.id).values(phone="+15005550001")
        )
        get_session().commit()

    sent = send(app, link.id)

    assert sent["status"] == "failed" and sent["error_code"] == "21211"
    assert "not a mobile number it can text (21211)" in sent["error"]
    assert twilio.sent == []
    assert "not a mobile number it can text" in staff.get(f"/links/{link.id}").text


def test_a_carrier_failure_reported_by_callback_marks_the_text_undelivered(
    app, client, staff, twilio, link_factory
):
    link = text_link(link_factory)
    send(app, link.id)
    [taken] = twilio.sent

    response = post_signed(client, twilio.status_callback(taken["sid"], "undelivered", "30007"))

    assert response.status_code == 200
    message = row(app, 1)
    assert message["status"] == "failed" and message["delivery_status"] == "undelivered"
    assert message["error_code"] == "30007"
    page = staff.get(f"/links/{link.id}").text
    assert "filtered it as possible spam" in page
    assert "Text message not delivered by the phone carrier" in page


def test_twilio_rate_limit_keeps_the_text_queued_for_run_jobs_never_raising(
    app, twilio, link_factory
):
    link = text_link(link_factory)
    twilio.inject("429")

    sent = send(app, link.id)

    assert sent["status"] == "queued" and sent["error_code"] == "20429"
    assert "retried" in sent["error"] and twilio.sent == []
    with app.app_context():
        out = texting.send_queued_texts(
            get_session(),
            app.jinja_env,
            notify.Transports.from_config(app.config),
            Clinic.from_config(app.config),
            lambda link: f"{SITE}/pay/token",
        )
    assert out == 1 and row(app, 1)["status"] == "sent" and len(twilio.sent) == 1
    with app.app_context():
        assert get_session().get(PaymentLink, link.id).sent_at is not None


def test_a_text_rate_limited_three_times_is_given_up_as_failed(app, twilio, link_factory):
    link = text_link(link_factory)
    for _ in range(3):
        twilio.inject("429")
    send(app, link.id)
    with app.app_context():
        for _ in range(3):
            texting.send_queued_texts(
                get_session(),
                app.jinja_env,
                notify.Transports.from_config(app.config),
                Clinic.from_config(app.config),
                lambda link: f"{SITE}/pay/token",
            )
    message = row(app, 1)
    assert message["status"] == "failed" and message["attempts"] == 3 and twilio.sent == []


def test_after_stop_nothing_is_texted_and_staff_see_why(app, client, staff, twilio, link_factory):
    link = text_link(link_factory)
    send(app, link.id)

    response = post_signed(client, twilio.reply(SITE + WEBHOOK, PATIENT, "STOP"))

    assert response.status_code == 200 and opted_out(app)
    second = send(app, link.id)
    assert second["status"] == "failed" and "replied STOP" in second["error"]
    assert len(twilio.sent) == 1  # only the text before STOP
    page = staff.get(f"/links/{link.id}").text
    assert "this number replied STOP" in page
    assert "Patient replied STOP: no more texts" in page


def test_a_spanish_stop_word_stops_texts_though_twilio_sends_no_opt_out_type(
    app, client, twilio, link_factory
):
    link = text_link(link_factory)
    send(app, link.id)
    _, form, _ = twilio.reply(SITE + WEBHOOK, PATIENT, "ALTO")
    assert "OptOutType" not in form  # Twilio's defaults are English (Advanced Opt-Out is not)

    assert post_signed(client, twilio.reply(SITE + WEBHOOK, PATIENT, "ALTO")).status_code == 200

    assert opted_out(app)
    assert send(app, link.id)["status"] == "failed" and len(twilio.sent) == 1
    post_signed(client, twilio.reply(SITE + WEBHOOK, PATIENT, "Comenzar"))
    assert not opted_out(app)


def test_start_lets_texts_go_out_again(app, client, twilio, link_factory):
    link = text_link(link_factory)
    send(app, link.id)
    post_signed(client, twilio.reply(SITE + WEBHOOK, PATIENT, "stop"))

    post_signed(client, twilio.reply(SITE + WEBHOOK, PATIENT, "Start"))

    assert not opted_out(app)
    assert send(app, link.id)["status"] == "sent" and len(twilio.sent) == 2
    assert {"sms.opted_out", "sms.opted_in"} <= set(audit_actions(app))


def test_help_is_only_recorded_twilio_answers_it(app, client, twilio, link_factory):
    link = text_link(link_factory)
    send(app, link.id)

    response = post_signed(client, twilio.reply(SITE + WEBHOOK, PATIENT, "HELP"))

    assert response.status_code == 200 and "<Message>" not in response.text
    assert "sms.help" in audit_actions(app) and not opted_out(app)


def test_a_bad_signature_is_refused_and_changes_nothing(app, client, twilio, link_factory):
    link = text_link(link_factory)
    send(app, link.id)
    [taken] = twilio.sent
    _, form, _ = twilio.reply(SITE + WEBHOOK, PATIENT, "STOP")
    _, status_form, headers = twilio.status_callback(taken["sid"], "undelivered", "30007")

    forged = client.post(WEBHOOK, data=form, headers={"X-Twilio-Signature": "bm90IGl0"})
    replayed = client.post(WEBHOOK, data={**status_form, "ErrorCode": "30003"}, headers=headers)
    unsigned = client.post(WEBHOOK, data=form)

    assert forged.status_code == replayed.status_code == unsigned.status_code == 403
    assert not opted_out(app)
    assert row(app, 1)["status"] == "sent" and row(app, 1)["delivery_status"] is None
    assert audit_actions(app).count("webhook.bad_signature") == 3


def test_the_webhook_is_absent_without_twilio(app, client, twilio):
    app.config["TWILIO_ENABLED"] = False
    assert client.post(WEBHOOK, data={"Body": "STOP", "From": PATIENT}).status_code == 404


def test_texts_outside_clinic_hours_wait_for_run_jobs(app, runner, twilio, link_factory):
    app.config.update(TEXT_HOURS="08:00-18:00", TEXT_DAYS="Mon-Fri")
    link = text_link(link_factory)

    queued = send(app, link.id, now=SATURDAY_NOON)
    early = run_jobs(app, runner, SATURDAY_NOON)
    result = run_jobs(app, runner, MONDAY_NINE)
    again = run_jobs(app, runner, MONDAY_NINE)

    assert queued["status"] == "queued" and "clinic hours" in queued["error"]
    assert "Sent 0 queued text message(s)." in early
    assert "Sent 1 queued text message(s)." in result
    assert "Sent 0 queued text message(s)." in again
    assert len(twilio.sent) == 1 and row(app, 1)["status"] == "sent"
    assert "sms.queued" in audit_actions(app)


def test_a_queued_text_for_a_link_cancelled_meanwhile_is_not_sent(app, twilio, link_factory):
    app.config.update(TEXT_HOURS="08:00-18:00", TEXT_DAYS="Mon-Fri")
    link = text_link(link_factory)
    send(app, link.id, now=SATURDAY_NOON)
    with app.app_context():
        session = get_session()
        session.execute(
            update(PaymentLink).where(PaymentLink.id == link.id).values(status="cancelled")
        )
        session.commit()
        texting.send_queued_texts(
            session,
            app.jinja_env,
            notify.Transports.from_config(app.config),
            Clinic.from_config(app.config),
            lambda link: f"{SITE}/pay/token",
            now=MONDAY_NINE,
        )
        [message] = session.scalars(select(Message)).all()
        assert message.status == "failed" and "cancelled" in message.error
    assert twilio.sent == []


def test_two_overlapping_run_jobs_send_each_queued_text_once(app, twilio, link_factory):
    app.config.update(TEXT_HOURS="08:00-18:00", TEXT_DAYS="Mon-Fri")
    for _ in range(6):
        send(app, text_link(link_factory).id, now=SATURDAY_NOON)
    start = threading.Barrier(2)
    counts = []

    def run_jobs_pass():
        with app.extensions["payapp.sessionmaker"]() as session:
            start.wait()
            counts.append(
                texting.send_queued_texts(
                    session,
                    app.jinja_env,
                    notify.Transports.from_config(app.config),
                    Clinic.from_config(app.config),
                    lambda link: f"{SITE}/pay/token",
                    now=MONDAY_NINE,
                )
            )

    threads = [threading.Thread(target=run_jobs_pass) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sum(counts) == 6 and len(twilio.sent) == 6
    with app.app_context():
        statuses = get_session().scalars(select(Message.status)).all()
    assert statuses == ["sent"] * 6


def paid_after_a_text(app, link_id):
    """The patient pays a texted link; its receipts are sent as after the pay page's answer."""
    from payapp import payments

    with app.app_context():
        session = get_session()
        payments.charge_link(
            session,
            app.extensions["payapp.gateway"],
            session.get(PaymentLink, link_id),
            attempt_key="t" * 24,
            source_id="cnon:card-nonce-ok",
        )
        notify.send_due_notices_for(app, session)
        receipt = session.scalar(select(Message).where(Message.kind == "receipt"))
        return receipt.id, receipt.retry_at


def retry_notices(app, when):
    with app.app_context():
        return notify.retry_failed_notices(
            get_session(),
            app.jinja_env,
            notify.Transports.from_config(app.config),
            Clinic.from_config(app.config),
            now=when,
        )


def test_a_receipt_text_twilio_rate_limited_is_sent_by_a_later_retry(app, twilio, link_factory):
    link = text_link(link_factory)
    send(app, link.id)
    twilio.inject("429")
    message_id, retry_at = paid_after_a_text(app, link.id)
    failed = row(app, message_id)
    assert failed["status"] == "failed" and failed["error_code"] == "20429"
    assert retry_at is not None and len(twilio.sent) == 1  # only the link's own text

    assert retry_notices(app, retry_at)["sent"] == 1
    assert retry_notices(app, retry_at)["sent"] == 0
    receipt = twilio.sent[-1]
    assert len(twilio.sent) == 2 and "Visa ending in 1111" in receipt["body"]
    assert row(app, message_id)["status"] == "sent" and row(app, message_id)["attempts"] == 2


def test_a_receipt_text_to_a_number_twilio_refuses_is_not_retried(app, twilio, link_factory):
    link = text_link(link_factory)
    send(app, link.id)
    with app.app_context():  # the number became Twilio's magic "invalid number" meanwhile
        get_session().execute(
            update(PaymentLink).where(PaymentLink.id == link.id).values(phone="+15005550001")
        )
        get_session().commit()
    message_id, retry_at = paid_after_a_text(app, link.id)
    assert row(app, message_id)["error_code"] == "21211" and retry_at is None


def test_a_spanish_link_is_texted_in_spanish_and_so_is_its_receipt(
    app, client, twilio, link_factory
):
    """Issue 11: the link's language sets its texts too, in GSM-7 within one segment."""
    from ..conftest import submit_card
    from ..test_sms import GSM7

    link = link_factory(email="", phone="(212) 555-0123", language="es")
    send(app, link.id)
    submit_card(client, link.path).close()  # the receipt goes out once the answer is sent

    request, receipt = twilio.sent
    assert request["body"].startswith("Bright Smile Dental $125.00: ")
    assert request["body"].endswith("Responda STOP para salir")
    assert receipt["to"] == PATIENT
    assert receipt["body"].startswith("Bright Smile Dental: recibimos $125.00 el ")
    assert "(Visa terminada en 1111), recibo " in receipt["body"]
    assert receipt["body"].endswith("¿Dudas? Llame al (212) 555-0100.")
    for body in (request["body"], receipt["body"]):
        assert set(body) <= GSM7 and len(body) <= 160, body


def test_a_spanish_text_queued_for_clinic_hours_goes_out_in_spanish_from_run_jobs(
    app, runner, twilio, link_factory
):
    app.config.update(TEXT_HOURS="08:00-18:00", TEXT_DAYS="Mon-Fri")
    link = link_factory(email="", phone="(212) 555-0123", language="es")
    assert send(app, link.id, now=SATURDAY_NOON)["status"] == "queued"
    assert "Sent 1 queued text message(s)." in run_jobs(app, runner, MONDAY_NINE)
    [taken] = twilio.sent
    assert taken["body"].endswith("Responda STOP para salir")
