"""What language a patient reads: Flask-Babel, the locale selector and the "Español / English"
switch. Staff pages are always English; only the patient's pages (the pay blueprint, and error
pages under the patient's paths) follow the patient's explicit choice > the link's language >
DEFAULT_LANGUAGE. Emails and texts follow the link's language alone (notify.in_patient_language).

Catalogues: payapp/translations/<lang>/LC_MESSAGES/messages.po, compiled to messages.mo and
committed (tests/test_i18n.py checks the .mo matches the .po); see docs/developer.md."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from flask import (
    current_app,
    g,
    has_app_context,
    has_request_context,
    redirect,
    request,
    session,
    url_for,
)
from flask_babel import Babel, get_locale, get_translations, refresh
from markupsafe import Markup

from . import links
from .plaintext import MarkedText
from .states import Language

PATIENT_BLUEPRINTS = frozenset({"pay"})
# A URL no route matched is still the patient's under their own paths (a mistyped link's 404).
PATIENT_PATHS = ("/pay/", "/reminders/stop/")
CHOICE_KEY = "patient_lang"  # the patient's explicit choice, in the signed session cookie


def clean_language(value: object) -> Language | None:
    """One of the two languages, or None: nothing else is ever stored or selected."""
    return Language.lookup(value)


def on_patient_page() -> bool:
    """Whether this request is one of the patient's pages (or a stray URL under theirs)."""
    if request.blueprint in PATIENT_BLUEPRINTS:
        return True
    return request.blueprint is None and (
        request.path == "/pay" or request.path.startswith(PATIENT_PATHS)
    )


def patient_language() -> Language:
    """The language of this request's page (English outside the patient's pages)."""
    if not has_request_context() or not on_patient_page():
        return Language.EN
    return page_language(session.get(CHOICE_KEY), g.get("link_language"))


def page_language(choice: object, link_language: object) -> Language:
    """A patient's page's language: their choice, else the link's, else the clinic's default."""
    for candidate in (choice, link_language, current_app.config["DEFAULT_LANGUAGE"]):
        language = clean_language(candidate)
        if language is not None:
            return language
    return Language.EN


def use_link_language(value: object) -> None:
    """The view found the link: its language counts unless the patient chose one."""
    g.link_language = value


def use_language_of_the_token() -> None:
    """An error page before the view found the link (a 429 from the limiter): the link's
    language, when the URL holds a genuine link token, unless the patient chose one."""
    token = (request.view_args or {}).get("token")
    if not token or g.get("link_language") is not None or CHOICE_KEY in session:
        return
    engine = current_app.extensions["payapp.engine"]
    row = links.find_link_row(engine, token, current_app.config["SECRET_KEY"])
    if row is not None:
        use_link_language(row.language)
        refresh()  # a locale cached earlier in the request is chosen again


def switch_language():
    """``?lang=es`` on a patient's page: remember the choice and show the page without it."""
    # No query string, no ?lang: most requests stop here without parsing their arguments.
    if not request.query_string:
        return None
    if request.blueprint not in PATIENT_BLUEPRINTS or "lang" not in request.args:
        return None
    if request.method != "GET":
        return None
    language = clean_language(request.args.get("lang"))
    if language is not None:
        session[CHOICE_KEY] = language.value
    rest = [(k, v) for k, v in request.args.items(multi=True) if k != "lang"]
    # Back to this route's own URL (built, never the raw path: no way to point elsewhere).
    here = url_for(request.endpoint, **(request.view_args or {}))
    return redirect(here + (f"?{urlencode(rest)}" if rest else ""), code=303)


def patient_date(when: datetime | None) -> str:
    """A date in the clinic's zone, in the page's language ('14 de diciembre de 2026')."""
    if when is None:
        return ""
    clinic = current_app.jinja_env.globals["clinic"]
    return clinic.patient_date(when, patient_language().value)


def switch_links() -> list[tuple[Language, str]]:
    """(language, URL) for each language other than the page's: the visible switch. The path
    only (the open page is cached per path); switch_language() keeps any other arguments."""
    current = patient_language()
    return [
        (language, f"{request.path}?lang={language.value}")
        for language in Language
        if language != current
    ]


def phone_link() -> Markup:
    """The clinic's number as a tel: link, for translated sentences that hold one."""
    phone = current_app.jinja_env.globals["clinic"].phone
    return Markup('<a href="tel:{0}">{0}</a>').format(phone)


def request_translations():
    """This request's catalogue. Flask-Babel keeps each catalogue per process but looks it up
    again for every string (about 12 us: its context, the locale's name, the cache key), a
    third of a rendered patient page's strings (issue 10, fourth round); here the lookup is
    kept for the request, and made again whenever the locale object changes (force_locale)."""
    if not has_app_context():  # e.g. a job's thread: Flask-Babel's own answer (English)
        return get_translations()
    locale = get_locale()
    kept = g.get("_payapp_translations")
    if kept is None or kept[0] is not locale:
        kept = g._payapp_translations = (locale, get_translations())
    return kept[1]


def translate(message: str) -> str:
    """The templates' ``_()``, and the views' for a message the domain wrote: a message with
    values (plaintext.PatientText / StaffText) is looked up by its msgid and filled with its
    values in the page's language."""
    if isinstance(message, MarkedText):
        return request_translations().ugettext(message.msgid) % message.values
    return request_translations().ugettext(message)


def init_app(app) -> None:
    Babel(app, locale_selector=lambda: patient_language().value)
    # Flask-Babel's template callables, each looking up the catalogue through the kept one.
    app.jinja_env.install_gettext_callables(
        gettext=translate,
        ngettext=lambda s, p, n: request_translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: request_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: request_translations().unpgettext(c, s, p, n),
    )
    app.before_request(switch_language)
    app.jinja_env.filters["patient_date"] = patient_date
    # A translated phrase without placeholders as plain text, escaped like the literal it
    # replaced (an apostrophe still reads &#39; in an attribute or a macro's argument).
    app.jinja_env.filters["as_text"] = str
    # A message the domain wrote (plaintext.staff_text / patient_text), translated where the page
    # shows it, and escaped like any value (not ``_(x)``, which would read its % signs again).
    app.jinja_env.filters["translated"] = translate
    app.jinja_env.globals.update(
        page_language=patient_language, language_switch=switch_links, phone_link=phone_link
    )
