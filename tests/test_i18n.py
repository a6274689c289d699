"""Spanish and English for what a patient sees (payapp/i18n.py, issue 11): the link's language,
the patient's own choice, the catalogue and its compiled form, and the cached open page."""

import gettext
import io
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from sqlalchemy import select

from payapp import links, payments
from payapp.db import get_session
from payapp.i18n import CHOICE_KEY
from payapp.models import PaymentLink
from payapp.states import Language, LinkStatus

from .conftest import open_pay_page, staff_post, submit_card

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "payapp" / "translations" / "es" / "LC_MESSAGES"
HTML_LANG = re.compile(r'<html lang="([a-z]+)">')


def spanish_catalogue():
    with open(CATALOGUE / "messages.po", "rb") as po:
        return read_po(po)


def extracted_msgids() -> set[str]:
    """What `pybabel extract -F babel.cfg -k patient_text` finds (see docs/developer.md)."""
    found = set()
    keywords = {"_": None, "gettext": None, "patient_text": None}
    method_map = [("payapp/**.py", "python"), ("templates/pay/**.html", "jinja2")]
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map=method_map, keywords=keywords
    ):
        found.add(message)
    return found


# --- the catalogue --------------------------------------------------------------------------


def test_every_patient_string_has_a_spanish_translation():
    catalogue = spanish_catalogue()
    translated = {m.id: m.string for m in catalogue if m.id and not m.fuzzy}
    missing = sorted(i for i in extracted_msgids() if not translated.get(i, "").strip())
    assert missing == [], "run pybabel extract/update (docs/developer.md) and translate these"


def test_every_message_a_patient_can_read_from_a_failed_payment_is_in_the_catalogue():
    translated = {m.id for m in spanish_catalogue() if m.id and m.string}
    messages = set(payments.DECLINE_MESSAGES.values())
    messages |= {
        payments.PaymentError.in_progress().message,
        payments.PaymentError.unknown().message,
        payments.PaymentError.unavailable().message,
    }
    for make in (links.LinkError.expired, links.LinkError.cancelled, links.LinkError.locked):
        messages.add(make().message)
    messages.add(links.LinkError.already_paid().message)
    assert messages - translated == set()


def test_the_committed_mo_file_is_the_compiled_po_file():
    compiled = io.BytesIO()
    write_mo(compiled, spanish_catalogue())
    compiled.seek(0)
    fresh = gettext.GNUTranslations(compiled)
    with open(CATALOGUE / "messages.mo", "rb") as mo:
        committed = gettext.GNUTranslations(mo)
    assert committed._catalog == fresh._catalog, "run pybabel compile -d payapp/translations"


def test_placeholders_are_kept_in_every_translation():
    for message in spanish_catalogue():
        if message.id:
            names = sorted(re.findall(r"%\((\w+)\)s", message.id))
            assert sorted(re.findall(r"%\((\w+)\)s", message.string)) == names, message.id


# --- the link's language and the patient's choice ---------------------------------------------


def test_a_spanish_link_shows_the_page_in_spanish(client, link_factory):
    link = link_factory(language="es")
    html = client.get(link.path).text
    assert HTML_LANG.search(html)[1] == "es"
    assert "Pagar $125.00" in html
    assert "Datos de la tarjeta" in html and "Card details" not in html
    assert "Hola, Jane:" in html
    assert 'hreflang="en">English</a>' in html


def test_an_english_link_is_unchanged_and_offers_spanish(client, link_factory):
    link = link_factory()
    html = client.get(link.path).text
    assert HTML_LANG.search(html)[1] == "en"
    assert "Pay $125.00" in html and "Card details" in html
    assert f'href="{link.path}?lang=es" lang="es" hreflang="es">Español</a>' in html


def test_the_switch_link_sets_the_choice_without_javascript(app, link_factory):
    link = link_factory()
    client = app.test_client()
    response = client.get(f"{link.path}?lang=es")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(link.path)
    with client.session_transaction() as session:
        assert session[CHOICE_KEY] == "es"
    assert HTML_LANG.search(client.get(link.path).text)[1] == "es"
    client.get(f"{link.path}?lang=en")
    assert "Pay $125.00" in client.get(link.path).text


@pytest.mark.parametrize("value", ["fr", "ES ", "", "en-US", "<script>"])
def test_only_the_two_languages_can_be_chosen(app, link_factory, value):
    link = link_factory(language="es")
    client = app.test_client()
    client.get(link.path, query_string={"lang": value})
    with client.session_transaction() as session:
        assert CHOICE_KEY not in session
    assert HTML_LANG.search(client.get(link.path).text)[1] == "es"  # the link's language


def test_the_patients_choice_stays_on_patient_pages_staff_pages_stay_english(
    app, staff, link_factory
):
    link = link_factory()
    staff.get(f"{link.path}?lang=es")
    assert "Pagar $125.00" in staff.get(link.path).text
    assert HTML_LANG.search(staff.get("/links").text)[1] == "en"


def test_a_spanish_decline_and_receipt(app, client, link_factory):
    link = link_factory(language="es")
    page = open_pay_page(client, link.path)
    declined = submit_card(client, link.path, nonce="cnon:card-nonce-declined", page=page)
    assert "Pago rechazado; no se le cobró nada." in declined.text
    assert "Puede intentarlo de nuevo con otra tarjeta" in declined.text
    assert "declined" not in declined.text
    paid = submit_card(client, link.path)
    assert "Su pago fue recibido" in paid.text
    assert "Monto pagado" in paid.text and "$125.00" in paid.text
    assert "Payment received" not in paid.text


def test_a_closed_spanish_link_says_so_in_spanish(app, client, link_factory):
    link = link_factory(language="es")
    with app.app_context():
        session = get_session()
        row = session.get(PaymentLink, link.id)
        row.status = LinkStatus.CANCELLED
        session.commit()
    response = client.get(link.path)
    assert response.status_code == 410
    assert "Este enlace de pago fue cancelado" in response.text


def test_dates_read_naturally_in_spanish(client, link_factory):
    link = link_factory(language="es", expires_in_days="14")
    html = client.get(link.path).text
    assert re.search(r"<dt>Pagar antes del</dt><dd>\d{1,2} de [a-z]+ de \d{4}</dd>", html)


# --- the cached open page ---------------------------------------------------------------------


def test_a_spanish_visitor_never_gets_the_cached_english_page_and_back(app, link_factory):
    link = link_factory()
    english = app.test_client()
    english.get(link.path)  # first view: the ORM path
    assert "Pay $125.00" in english.get(link.path).text  # now cached in English
    spanish = app.test_client()
    spanish.get(f"{link.path}?lang=es")
    assert "Pagar $125.00" in spanish.get(link.path).text
    assert "Pagar $125.00" in spanish.get(link.path).text  # its own cached page
    assert "Pay $125.00" in english.get(link.path).text
    assert "Pay $125.00" in app.test_client().get(link.path).text


def test_a_spanish_links_cached_page_is_spanish_until_the_patient_switches(app, link_factory):
    link = link_factory(language="es")
    client = app.test_client()
    client.get(link.path)
    assert "Pagar $125.00" in client.get(link.path).text
    other = app.test_client()
    other.get(f"{link.path}?lang=en")
    assert "Pay $125.00" in other.get(link.path).text
    assert "Pagar $125.00" in client.get(link.path).text


# --- staff choose the language ----------------------------------------------------------------


def test_staff_choose_the_language_on_the_new_link_form(app, staff):
    form = staff.get("/links/new").text
    assert 'name="language" value="en" checked' in form
    staff_post(
        staff,
        "/links/new",
        {
            "patient_name": "Ana Ruiz",
            "email": "ana@example.com",
            "amount": "80.00",
            "expires_in_days": "14",
            "language": "es",
        },
        page_url="/links/new",
    )
    with app.app_context():
        query = select(PaymentLink).where(PaymentLink.patient_name == "Ana Ruiz")
        link = get_session().scalar(query)
        assert link.language == Language.ES


def test_a_language_other_than_the_two_is_refused():
    draft = links.LinkDraft(patient_name="Ana", amount="10", send_now=False, language="fr")
    with pytest.raises(links.LinkInputError) as exc:
        links.clean_draft(draft, links.LinkRules())
    assert exc.value.errors["language"] == "Choose English or Spanish."


def test_a_new_link_takes_the_default_language_setting():
    draft = links.LinkDraft(patient_name="Ana", amount="10", send_now=False)
    clean = links.clean_draft(draft, links.LinkRules(default_language="es"))
    assert clean.language == Language.ES


def test_the_create_link_command_takes_a_language(app, runner):
    command = ["create-link", "--amount", "40", "--name", "Luis Mora", "--language"]
    with app.app_context():
        result = runner.invoke(args=[*command, "es"])
        assert result.exit_code == 0, result.output
    with app.app_context():
        refused = runner.invoke(args=[*command, "de"])
    assert refused.exit_code != 0 and "Choose English or Spanish." in refused.output
    with app.app_context():
        query = select(PaymentLink.language).where(PaymentLink.patient_name == "Luis Mora")
        assert get_session().scalars(query).all() == ["es"]


def test_an_unknown_default_language_refuses_to_start(tmp_path, monkeypatch):
    from payapp import create_app
    from payapp.config import ConfigError

    monkeypatch.setenv("PAYAPP_INSTANCE_PATH", str(tmp_path / "instance"))
    with pytest.raises(ConfigError, match="DEFAULT_LANGUAGE"):
        create_app({"TESTING": True, "DEFAULT_LANGUAGE": "fr"})


@pytest.mark.parametrize("config_overrides", [{"DEFAULT_LANGUAGE": "es"}])
def test_the_default_language_setting_picks_the_new_link_forms_choice(app, staff):
    assert 'name="language" value="es" checked' in staff.get("/links/new").text


# --- the other patient pages ------------------------------------------------------------------


def test_the_statement_lookup_page_follows_the_patients_choice(app):
    client = app.test_client()
    assert "Pay your bill" in client.get("/pay").text
    client.get("/pay?lang=es")
    html = client.get("/pay").text
    assert HTML_LANG.search(html)[1] == "es"
    assert "Pague su cuenta" in html and "Buscar mi cuenta" in html
    page = client.get("/pay")
    answer = client.post(
        "/pay",
        data={"csrf_token": re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)[1]},
    )
    assert "Escriba el número que aparece en su estado de cuenta en papel." in answer.text


def test_a_spanish_links_problem_form_and_its_thanks(app, client, link_factory):
    link = link_factory(language="es")
    form = client.get(f"{link.path}/problem")
    assert "¿Qué salió mal?" in form.text and "El monto parece incorrecto" in form.text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form.text)[1]
    refused = client.post(f"{link.path}/problem", data={"csrf_token": token})
    assert "Elija qué salió mal." in refused.text
    sent = client.post(
        f"{link.path}/problem",
        data={"csrf_token": token, "category": "amount_wrong"},
        follow_redirects=True,
    )
    assert "recibió su reporte" in sent.text


def test_a_spanish_links_reminder_opt_out_page(app, client, link_factory):
    from payapp import reminders

    link = link_factory(language="es")
    with app.app_context():
        row = get_session().get(PaymentLink, link.id)
        url = reminders.opt_out_url("http://x", row, app.config["SECRET_KEY"])
    html = client.get(url.removeprefix("http://x")).text
    assert "¿Dejar de recibir recordatorios de esta cuenta?" in html
    # A mangled link names no link: English, unless the patient chose Spanish.
    assert "This link to stop reminders is not valid." in (
        app.test_client().get("/reminders/stop/not-a-token.abcdefgh").text
    )
    client.get(f"{link.path}?lang=es")
    assert "Este enlace para dejar de recibir recordatorios no es válido." in (
        client.get("/reminders/stop/not-a-token.abcdefgh").text
    )


def test_a_spanish_patient_asking_for_a_new_link_is_answered_in_spanish(app, client, link_factory):
    link = link_factory(language="es")
    with app.app_context():
        session = get_session()
        session.get(PaymentLink, link.id).status = LinkStatus.LOCKED
        session.commit()
    page = client.get(link.path)
    assert "Envíenme un enlace nuevo" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
    answer = client.post(f"{link.path}/new-link", data={"csrf_token": token}, follow_redirects=True)
    assert "Le pedimos a la recepción que le envíe un enlace nuevo" in answer.text


def test_the_switch_keeps_other_arguments_and_only_points_back_at_the_page(app, link_factory):
    link = link_factory()
    response = app.test_client().get(f"{link.path}?lang=es&utm=x")
    assert response.status_code == 303
    assert response.headers["Location"] == f"{link.path}?utm=x"
    assert app.test_client().get("/pay?lang=es").headers["Location"] == "/pay"


def test_the_kept_catalogue_follows_the_requests_locale_and_force_locale(app, link_factory):
    # i18n.request_translations keeps the catalogue for the request (issue 10, fourth round).
    from flask import g
    from flask_babel import force_locale

    template = app.jinja_env.from_string(
        "{{ _('Pay your bill') }}|{{ _('Pay %(amount)s', amount='$5') }}"
    )
    with app.test_request_context(link_factory().path):
        g.link_language = "es"
        assert template.render() == "Pague su cuenta|Pagar $5"
        with force_locale("en"):
            assert template.render() == "Pay your bill|Pay $5"
        assert template.render() == "Pague su cuenta|Pagar $5"
    with app.test_request_context(link_factory().path):  # the next request starts afresh
        g.link_language = "en"
        assert template.render() == "Pay your bill|Pay $5"
