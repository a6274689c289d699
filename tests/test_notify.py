"""Delivery failures are recorded on the message row, never raised (issue 7 §4): a link whose
details the email library refuses, an SMTP server that cannot be reached."""

from sqlalchemy import select

from payapp import notify
from payapp.clinic import Clinic
from payapp.db import get_session
from payapp.models import Message, PaymentLink

from .conftest import staff_post
from .support.servers import free_port


def store_legacy_details(app, link_id, **fields):
    """A link saved before invisible characters were refused (it is still in the database)."""
    with app.app_context():
        link = get_session().get(PaymentLink, link_id)
        for name, value in fields.items():
            setattr(link, name, value)
        get_session().commit()


def messages(app):
    with app.app_context():
        return [(m.channel, m.status, m.error) for m in get_session().scalars(select(Message))]


def test_resend_of_a_link_the_email_library_refuses_records_a_failed_message(
    app, staff, link_factory
):
    link = link_factory(phone="(212) 555-0123")
    store_legacy_details(app, link.id, reference="INV\u20281001")

    response = staff_post(staff, f"/links/{link.id}/resend", page_url=f"/links/{link.id}")

    assert response.status_code == 303
    page = staff.get(f"/links/{link.id}").text
    assert "Could not send the email to jane@example.com" in page
    assert "Sent by text message to +12125550123." in page
    [email, sms] = messages(app)
    assert email[:2] == ("email", "failed") and "Check the name and reference" in email[2]
    assert sms == ("sms", "sent", None)


def test_a_failed_delivery_at_the_domain_level_is_returned_not_raised(app, link_factory):
    link = link_factory()
    store_legacy_details(app, link.id, reference="INV\u00851001")
    with app.app_context():
        session = get_session()
        sent = notify.send_link(
            session,
            app.jinja_env,
            notify.Transports.from_config(app.config),
            session.get(PaymentLink, link.id),
            "http://localhost/pay/x",
            Clinic.from_config(app.config),
        )
        assert [(m.channel, m.status) for m in sent] == [("email", "failed")]
        assert session.get(PaymentLink, link.id).sent_at is None


def test_an_unreachable_smtp_server_is_a_failed_message_and_a_clear_flash(app, staff, link_factory):
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{free_port()}"
    link = link_factory()

    response = staff_post(staff, f"/links/{link.id}/resend", page_url=f"/links/{link.id}")

    assert response.status_code == 303
    assert "Could not send the email to jane@example.com" in staff.get(f"/links/{link.id}").text
    [(channel, status, error)] = messages(app)
    assert (channel, status) == ("email", "failed") and "SMTP delivery to 127.0.0.1" in error


def test_reissuing_a_link_with_details_todays_rules_refuse_explains_instead_of_failing(
    app, staff, link_factory
):
    link = link_factory()
    store_legacy_details(app, link.id, reference="INV\u202e1001", status="cancelled")

    response = staff_post(staff, f"/links/{link.id}/reissue", page_url=f"/links/{link.id}")

    assert response.status_code == 303
    assert "Remove the invisible or control characters" in staff.get(f"/links/{link.id}").text
    with app.app_context():
        assert len(get_session().scalars(select(PaymentLink)).all()) == 1
