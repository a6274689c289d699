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
from babel.util import pathmatch
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


# Everything a patient reads or receives: their pages, the error pages, the messages sent to
# them. The front desk's notices (templates/emails/*_notice.txt) and staff pages stay English.
PATIENT_TEMPLATES = (
    "templates/base.html",
    "templates/pay/**.html",
    "templates/errors/**.html",
    "templates/emails/payment_link.*",
    "templates/emails/reminder.*",
    "templates/emails/receipt.*",
    "templates/emails/refund.*",
    "templates/sms/**.txt",
)
STAFF_NOTICES = {"link_request_notice.txt", "problem_notice.txt"}


def patient_templates() -> list[str]:
    """The template files PATIENT_TEMPLATES names, matched as pybabel matches them."""
    every = (p.relative_to(ROOT).as_posix() for p in (ROOT / "templates").rglob("*.*"))
    return sorted(f for f in every if any(pathmatch(pat, f) for pat in PATIENT_TEMPLATES))


# The Python modules whose gettext words a patient reads; patient_text marks them anywhere else.
# Staff strings are in the catalogue too, untranslated (tests/test_staff_strings.py).
PATIENT_PYTHON = ("payapp/views/pay.py", "payapp/notify.py", "payapp/errors.py")


def extracted_msgids() -> set[str]:
    """The patient's strings among what `pybabel extract` finds (see docs/developer.md)."""
    found = set()
    sources = [(p, "jinja2") for p in PATIENT_TEMPLATES] + [(p, "python") for p in PATIENT_PYTHON]
    passes = [
        (sources, {"_": None, "gettext": None, "ngettext": (1, 2), "patient_text": None}),
        ([("payapp/**.py", "python")], {"patient_text": None}),
    ]
    for method_map, keywords in passes:
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map=method_map, keywords=keywords
        ):
            found.update([message] if isinstance(message, str) else message)
    return found


# --- the catalogue --------------------------------------------------------------------------


def test_every_patient_string_has_a_spanish_translation():
    catalogue = spanish_catalogue()
    translated = {m.id: m.string for m in catalogue if m.id and not m.fuzzy}
    missing = sorted(i for i in extracted_msgids() if not translated.get(i, "").strip())
    assert missing == [], "run pybabel extract/update (docs/developer.md) and translate these"


def test_babel_cfg_extracts_every_patient_template():
    """pybabel reads what this test reads: no patient template is left out of the catalogue."""
    sections = re.findall(r"^\[jinja2: (.+)\]$", (ROOT / "babel.cfg").read_text(), re.M)
    unread = [f for f in patient_templates() if not any(pathmatch(p, f) for p in sections)]
    assert unread == []
    emails = {p.name for p in (ROOT / "templates" / "emails").iterdir()}
    patient = {
        f.rpartition("/")[2] for f in patient_templates() if f.startswith("templates/emails/")
    }
    assert emails - patient == STAFF_NOTICES, "a new email: add it to babel.cfg or STAFF_NOTICES"


def bare_words(template: str) -> list[str]:
    """Words a template shows outside {{ _(...) }}: none may be left untranslatable."""
    text = re.sub(r"\{% block \w+_class %\}.*?\{% endblock %\}", "", template)  # CSS classes
    for pattern in (r"\{#.*?#\}", r"\{\{.*?\}\}", r"\{%.*?%\}", r"<!--.*?-->", r"<[^>]*>"):
        text = re.sub(pattern, "", text, flags=re.S)
    return re.findall(r"[A-Za-z][A-Za-z']+", re.sub(r"&#?\w+;", "", text))


@pytest.mark.parametrize("path", patient_templates())
def test_a_patient_template_has_no_words_outside_the_catalogue(path):
    assert bare_words((ROOT / path).read_text(encoding="utf-8")) == []


def test_the_bare_word_check_catches_an_unwrapped_sentence():
    assert bare_words('<p class="x">{{ _("Hola") }} Pay now</p>') == ["Pay", "now"]
    assert bare_words('{% block body_class %}patient{% endblock %}{{ _("Pay") }}') == []


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
        if message.id and isinstance(message.id, str) and message.string:
            names = sorted(re.findall(r"%\((\w+)\)s", message.id))
            assert sorted(re.findall(r"%\((\w+)\)s", message.string)) == names, message.id
        elif message.id and any(message.string):  # plural forms: each keeps the plural's names
            names = set(re.findall(r"%\((\w+)\)s", message.id[1]))
            for form in message.string:
                assert set(re.findall(r"%\((\w+)\)s", form)) == names, message.id


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


def test_a_spanish_problem_report_with_invisible_characters_is_refused_in_spanish(
    client, link_factory
):
    link = link_factory(language="es")
    form = client.get(f"{link.path}/problem")
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form.text)[1]
    data = {"csrf_token": token, "category": "amount_wrong", "text": "hola\u202eadios"}
    refused = client.post(f"{link.path}/problem", data=data)
    assert refused.status_code == 422
    assert "Quite los caracteres invisibles o de control de su mensaje" in refused.text
    assert "Remove the invisible" not in refused.text


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


# --- what the patient receives: emails and texts in the link's language ----------------------

SPANISH_DATE = re.compile(
    r"\b\d{1,2} de (enero|febrero|marzo|abril|mayo|junio|julio|agosto|"
    r"septiembre|octubre|noviembre|diciembre) de \d{4}\b"
)


def sent(tmp_path, pattern):
    import email
    from email import policy

    return [
        email.message_from_bytes(p.read_bytes(), policy=policy.default)
        for p in sorted((tmp_path / "outbox").glob(pattern))
    ]


def plain(message) -> str:
    return " ".join(message.get_body(("plain",)).get_content().split())


def test_a_spanish_links_email_and_text_are_in_spanish(app, staff, link_factory, tmp_path):
    link = link_factory(language="es", phone="(415) 555-2671")
    staff_post(staff, f"/links/{link.id}/resend", page_url=f"/links/{link.id}")

    [mail] = sent(tmp_path, "*-email.eml")
    assert mail["Subject"] == "Bright Smile Dental: solicitud de pago del estado de cuenta INV-1001"
    text = plain(mail)
    assert text.startswith("Hola, Jane: Bright Smile Dental le envió un enlace seguro para pagar")
    assert "El enlace funciona hasta el" in text and SPANISH_DATE.search(text)
    assert "Pague en línea: http://localhost/pay/" in text
    assert "Hello" not in text and "Pay online" not in text
    html = mail.get_body(("html",)).get_content()
    assert '<html lang="es">' in html and "Pagar $125.00</a>" in html
    [texted] = sorted((tmp_path / "outbox").glob("*-sms.txt"))
    assert texted.read_text().rstrip().endswith("Responda STOP para salir")


def test_an_english_links_messages_stay_english(app, staff, link_factory, tmp_path):
    link = link_factory(phone="(415) 555-2671")
    staff_post(staff, f"/links/{link.id}/resend", page_url=f"/links/{link.id}")
    [mail] = sent(tmp_path, "*-email.eml")
    assert mail["Subject"] == "Bright Smile Dental: payment request for statement INV-1001"
    assert plain(mail).startswith("Hello Jane, Bright Smile Dental has sent you a secure link")
    assert '<html lang="en">' in mail.get_body(("html",)).get_content()


def test_sending_a_spanish_message_leaves_the_staff_page_english(app, staff, link_factory):
    link = link_factory(language="es")
    page = staff_post(staff, f"/links/{link.id}/resend", page_url=f"/links/{link.id}")
    assert HTML_LANG.search(staff.get(f"/links/{link.id}").text)[1] == "en"
    assert page.status_code == 303


def test_a_spanish_wallet_payment_gets_a_spanish_receipt_naming_the_wallet(
    app, client, link_factory, tmp_path
):
    link = link_factory(language="es")
    paid = submit_card(
        client, link.path, nonce="cnon:demo-apple-pay-ok", extra={"wallet": "apple_pay"}
    )
    assert "Apple Pay (Visa terminada en 1111)" in paid.text
    paid.close()  # the receipt goes out once the answer is sent

    [receipt] = sent(tmp_path, "*-receipt-email.eml")
    assert receipt["Subject"] == "Bright Smile Dental: recibo de su pago de $125.00"
    text = plain(receipt)
    assert "Gracias. Bright Smile Dental recibió su pago." in text
    assert "Tarjeta: Apple Pay (Visa terminada en 1111)" in text
    assert SPANISH_DATE.search(text.split("Fecha:")[1])
    with app.app_context():
        assert get_session().scalar(select(payments.Payment.wallet)) == "apple_pay"


def test_a_card_payment_names_no_wallet_and_a_made_up_wallet_is_ignored(app, client, link_factory):
    link = link_factory()
    paid = submit_card(client, link.path, extra={"wallet": "<b>Bank of Mallory</b>"})
    assert "Visa ending 1111" in paid.text and "Mallory" not in paid.text
    with app.app_context():
        assert get_session().scalar(select(payments.Payment.wallet)) is None


def test_a_spanish_refund_notice(app, client, admin, link_factory, tmp_path):
    link = link_factory(language="es")
    submit_card(client, link.path).close()
    with app.app_context():
        payment_id = get_session().scalar(select(payments.Payment.id))
    staff_post(
        admin,
        f"/links/{link.id}/refund",
        {"payment_id": payment_id, "amount": "25.00", "reason": "overbilled", "refund_key": "k1"},
        page_url=f"/links/{link.id}",
    )
    [notice] = sent(tmp_path, "*-refund-email.eml")
    assert notice["Subject"] == "Bright Smile Dental: reembolso de $25.00"
    text = plain(notice)
    assert "Bright Smile Dental le devolvió $25.00 a su Visa terminada en 1111." in text
    assert "queda pagado $100.00" in text and "días hábiles" in text


# --- error pages on the patient's paths -------------------------------------------------------


def test_a_mistyped_link_gets_the_not_found_page_in_the_patients_language(app, link_factory):
    client = app.test_client()
    english = client.get("/pay/not-a-real-token")
    assert english.status_code == 404 and "Page not found" in english.text
    link = link_factory()
    client.get(f"{link.path}?lang=es")  # the patient chose Spanish on a page before
    spanish = client.get("/pay/not-a-real-token")
    assert spanish.status_code == 404
    assert HTML_LANG.search(spanish.text)[1] == "es"
    assert "No encontramos la página" in spanish.text and "Revise el enlace" in spanish.text
    assert "Page not found" not in spanish.text and "Ir al contenido" in spanish.text
    stray = client.get("/pay/a/b/c")  # no route: still under the patient's paths
    assert stray.status_code == 404 and "No encontramos la página" in stray.text


@pytest.mark.parametrize("config_overrides", [{"DEFAULT_LANGUAGE": "es"}])
def test_the_default_language_setting_covers_the_error_pages(app):
    response = app.test_client().get("/pay/not-a-real-token")
    assert "No encontramos la página" in response.text


def test_staff_error_pages_stay_english(app, staff, link_factory):
    staff.get(f"{link_factory().path}?lang=es")
    response = staff.get("/links/999999")
    assert response.status_code == 404 and HTML_LANG.search(response.text)[1] == "en"
    assert "Page not found" in response.text


@pytest.mark.parametrize(
    "config_overrides", [{"RATELIMIT_ENABLED": True, "RATELIMIT_PAY_VIEW": "1 per minute"}]
)
def test_too_many_attempts_on_a_spanish_link_says_so_in_spanish(app, link_factory):
    link = link_factory(language="es")
    client = app.test_client()
    assert client.get(link.path).status_code == 200
    limited = client.get(link.path)  # the limiter answers before the view reads the link
    assert limited.status_code == 429
    assert HTML_LANG.search(limited.text)[1] == "es"
    assert "Demasiados intentos" in limited.text and "Por su seguridad" in limited.text


def test_a_message_with_a_number_is_translated_with_its_number(app):
    client = app.test_client()
    client.get("/pay?lang=es")
    page = client.get("/pay")
    answer = client.post(
        "/pay",
        data={
            "csrf_token": re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)[1],
            "statement": "9" * 41,
            "last_name": "Doe",
        },
    )
    assert answer.status_code == 422
    assert "El número de estado de cuenta puede tener como máximo 40 caracteres." in answer.text
    assert "at most" not in answer.text


def test_a_patient_text_with_numbers_reads_as_english_and_keeps_its_catalogue_entry():
    from payapp.plaintext import patient_text

    message = patient_text("Keep it under %(max)s characters (%(count)s now).", max=5, count=7)
    assert message == "Keep it under 5 characters (7 now)."
    assert message.msgid in {m.id for m in spanish_catalogue()}
    with pytest.raises(TypeError):
        patient_text("Hello %(name)s", name="<b>")


@pytest.mark.parametrize("config_overrides", [{"NEW_LINK_REQUESTS": "reissue"}])
def test_a_spanish_patients_new_link_arrives_in_spanish_and_the_desk_notices_stay_english(
    app, client, link_factory, tmp_path
):
    from .test_link_requests import ask, closed_link
    from .test_problems import report_problem

    app.config["FRONT_DESK_EMAIL"] = "desk@clinic.example"
    link = closed_link(app, link_factory, "expired", language="es", reference="INV-ES")
    ask(client, link)  # reissued at once, sent in the old link's language
    [new_link] = [m for m in sent(tmp_path, "*-email.eml") if m["To"] == "jane@example.com"]
    assert (
        new_link["Subject"] == "Bright Smile Dental: solicitud de pago del estado de cuenta INV-ES"
    )
    assert plain(new_link).startswith("Hola, Jane:")

    open_link = link_factory(language="es")
    report_problem(client, open_link, {"category": "card_declined"})
    [notice] = sent(tmp_path, "*problem*.eml")
    assert notice["Subject"].endswith("a patient reported a payment problem (My card was declined)")
    assert "A patient used the" in notice.get_content()


def test_square_s_card_field_is_asked_for_the_pages_language(client, link_factory):
    """pay.js passes data-locale to Square's payments.setLocale() (es-US is one Square supports)."""
    assert 'data-locale="es-US"' in client.get(link_factory(language="es").path).text
    assert 'data-locale="en-US"' in client.get(link_factory().path).text


def test_a_wallet_payments_refund_notice_names_the_card_it_goes_back_to(
    app, client, admin, link_factory, tmp_path
):
    link = link_factory(language="es")
    submit_card(
        client, link.path, nonce="cnon:demo-google-pay-ok", extra={"wallet": "google_pay"}
    ).close()
    with app.app_context():
        payment_id = get_session().scalar(select(payments.Payment.id))
    staff_post(
        admin,
        f"/links/{link.id}/refund",
        {"payment_id": payment_id, "amount": "125.00", "reason": "x", "refund_key": "k1"},
        page_url=f"/links/{link.id}",
    )
    [receipt] = sent(tmp_path, "*-receipt-email.eml")
    assert "Tarjeta: Google Pay (Visa terminada en 1111)" in plain(receipt)
    [notice] = sent(tmp_path, "*-refund-email.eml")
    assert "le devolvió $125.00 a su Visa terminada en 1111." in plain(notice)


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
