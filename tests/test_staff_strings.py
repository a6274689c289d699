"""Staff strings are marked for translation (issue 11): staff pages stay English, but every word
they show goes through gettext, so a later translation needs only the catalogue.

Three checks, each cheap and each able to fail:
- templates: what a staff template writes literally (text and the attributes people read) has no
  words left outside ``{{ _("...") }}``, and no prose is passed to a macro as a bare string;
- Python: flash messages, form labels and error texts in the staff views are gettext calls;
- catalogue: every marked string is in messages.po (run the extract/update in docs/developer.md);
- domain messages: no sentence in the modules whose errors staff read (MESSAGE_MODULES) is
  written outside staff_text / patient_text.
A pseudo-translation then renders the main staff pages, and every error of the forms and
actions whose messages the domain writes, and finds no visible words it did not translate, other
than the data the test put there: a message is translated where it is shown, never where stored.
"""

from __future__ import annotations

import ast
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from jinja2 import Environment

from .conftest import csrf_from, staff_post, submit_card

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
STAFF_TEMPLATE_DIRS = ["staff", "dashboard", "users", "audit", "auth", "exports", "problems"]
SHARED_TEMPLATES = ["base.html", "_flash.html", "_forms.html"]
# Views whose pages are the patient's (their strings are in test_i18n) or that render no page.
NOT_STAFF_VIEWS = {"pay.py", "twilio.py", "webhooks.py", "__init__.py"}

WORDS = re.compile(r"[A-Za-z]{2,}")
# A string literal reads as prose: a capitalised word, or a lower-case word between spaces.
PROSE = re.compile(r"^[A-Z][a-z]+\b|\s[a-z]+\s")
TRANSLATING = {"_", "gettext", "ngettext", "lazy_gettext"}
READ_ATTRIBUTES = {"title", "aria-label", "placeholder", "alt", "data-label"}
CLASS_BLOCKS = {"main_class", "body_class"}  # {% block main_class %}container narrow{% endblock %}


def staff_templates() -> list[Path]:
    found = [TEMPLATES / name for name in SHARED_TEMPLATES]
    for folder in STAFF_TEMPLATE_DIRS:
        found += sorted((TEMPLATES / folder).rglob("*.html"))
    return found


class _VisibleText(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.words: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in READ_ATTRIBUTES and value and WORDS.search(value):
                self.words.append(value)

    def handle_data(self, data):
        if WORDS.search(data):
            self.words.append(data.strip())


def unmarked_strings(source: str) -> list[str]:
    """Words a template writes without gettext: its literal text (Jinja code removed) and
    prose-looking string literals that are not a translating call's message."""
    literal, prose = [], []
    calls: list[bool] = []  # open parentheses: is each one a translating call?
    previous = ""
    skip_data = False
    for lineno, kind, value in Environment().lex(source):
        if kind == "whitespace":
            continue
        if kind == "data":
            if not skip_data:
                literal.append(value)
            skip_data = False
        elif kind in ("variable_begin", "block_begin"):
            calls = []
        elif kind == "name" and value in CLASS_BLOCKS and previous == "block":
            skip_data = True
        elif kind == "operator" and value == "(":
            calls.append(previous in TRANSLATING)
        elif kind == "operator" and value == ")" and calls:
            calls.pop()
        elif kind == "string":
            text = value[1:-1]
            is_message = bool(calls) and calls[-1] and previous in ("(", ",")
            markup = '="' in text or text.startswith("<")  # attribute lists and tags
            if not is_message and not markup and PROSE.search(text):
                prose.append(f"line {lineno}: {value}")
        previous = value
    parser = _VisibleText()
    parser.feed("".join(literal))
    return parser.words + prose


@pytest.mark.parametrize("template", staff_templates(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_word_a_staff_template_writes_is_marked_for_translation(template):
    assert unmarked_strings(template.read_text()) == []


@pytest.mark.parametrize(
    "snippet",
    [
        "<p>Payment links</p>",
        '<td data-label="Amount">{{ x }}</td>',
        '{{ field("amount", "Amount (USD)") }}',
        '{{ post_button(url, "Cancel link") }}',
        '{{ "Email" if a else "Text" }}',
        '{{ _("Pay %(x)s", x="made in Square") }}',
        "{% if a %}Yes{% else %}No{% endif %}",
    ],
)
def test_the_template_check_finds_unmarked_words(snippet):
    assert unmarked_strings(snippet) != []


@pytest.mark.parametrize(
    "snippet",
    [
        '<p>{{ _("Payment links") }}</p>',
        '<td data-label="{{ _("Amount") }}">{{ x }}</td>',
        '{{ field("amount", _("Amount (USD)"), attrs=\'inputmode="decimal" required\') }}',
        '{{ ngettext("%(num)s link", "%(num)s links", n) }} · {{ url_for("staff.list_links") }}',
        '{% block main_class %}container narrow{% endblock %}<p>{{ link.reference or "—" }}</p>',
    ],
)
def test_the_template_check_passes_marked_words(snippet):
    assert unmarked_strings(snippet) == []


# --- Python: flash messages, form labels and error texts in the staff views ------------------


def _is_bare_text(node: ast.AST) -> bool:
    """A string written in place (a literal, an f-string, or text glued with +)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and bool(WORDS.search(node.value))
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _is_bare_text(node.left) or _is_bare_text(node.right)
    if isinstance(node, ast.IfExp):
        return _is_bare_text(node.body) or _is_bare_text(node.orelse)
    return False


def unmarked_in_view(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            shown = []
            if name == "flash" or name.endswith("Field"):
                shown += node.args[:1]
            shown += [k.value for k in node.keywords if k.arg in ("error", "title", "label")]
            found += [f"line {n.lineno}: {name}()" for n in shown if _is_bare_text(n)]
        elif isinstance(node, ast.Assign):
            targets = [t for t in node.targets if isinstance(t, ast.Subscript)]
            named_errors = any(getattr(t.value, "id", "") == "errors" for t in targets)
            if named_errors and _is_bare_text(node.value):
                found.append(f"line {node.lineno}: errors[...] =")
        elif isinstance(node, ast.Tuple) and len(node.elts) == 2:  # (value, label) choices
            value, label = node.elts
            constants = isinstance(value, ast.Constant) and isinstance(label, ast.Constant)
            if constants and isinstance(label.value, str) and PROSE.search(label.value):
                found.append(f"line {node.lineno}: ({value.value!r}, {label.value!r})")
    return found


STAFF_VIEWS = sorted(
    p for p in (ROOT / "payapp" / "views").glob("*.py") if p.name not in NOT_STAFF_VIEWS
)


@pytest.mark.parametrize("view", STAFF_VIEWS, ids=lambda p: p.name)
def test_flash_messages_and_form_labels_in_staff_views_are_marked(view):
    assert unmarked_in_view(view.read_text()) == []


def test_the_view_check_finds_unmarked_messages():
    source = """
flash("Payment link created.", "success")
flash(f"Sent to {who}.", "success")
flash("Not reissued: " + why, "error")
email = StringField("Email")
errors["form"] = "Fix the fields."
CHOICES = (("7", "Last week"),)
render("x.html", error="Enter the code.")
"""
    assert len(unmarked_in_view(source)) == 7
    marked = """
flash(_("Payment link created."), "success")
flash(exc.message, "error")
email = StringField(lazy_gettext("Email"))
errors["form"] = _("Fix the fields.")
CHOICES = (("7", lazy_gettext("Last week")),)
"""
    assert unmarked_in_view(marked) == []


# --- the catalogue --------------------------------------------------------------------------


def all_marked_msgids() -> set[str]:
    """What `pybabel extract -F babel.cfg -k patient_text -k staff_text -k lazy_gettext` finds."""
    keywords = {
        "_": None,
        "gettext": None,
        "ngettext": (1, 2),
        "lazy_gettext": None,
        "patient_text": None,
        "staff_text": None,
    }
    method_map = [("payapp/**.py", "python"), ("templates/**.html", "jinja2")]
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map=method_map, keywords=keywords
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_marked_string_is_in_the_catalogue():
    with open(ROOT / "payapp/translations/es/LC_MESSAGES/messages.po", "rb") as po:
        catalogued = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(po) if m.id}
    missing = sorted(all_marked_msgids() - catalogued)
    assert missing == [], "run pybabel extract/update (docs/developer.md, Translations)"


def test_the_state_labels_staff_read_are_marked():
    from payapp import decline_reasons, states

    marked = all_marked_msgids()
    for enum in (states.LinkStatus, states.PaymentStatus, states.AuditAction, states.SurgeKind):
        assert {member.label for member in enum} <= marked, enum
    assert set(decline_reasons.STAFF_WORDS.values()) <= marked


# --- a pseudo-translation of the main staff pages ---------------------------------------------


class _Brackets:
    """A catalogue that translates every message to ⟦message⟧."""

    def ugettext(self, message):
        return f"⟦{message}⟧"

    def ungettext(self, singular, plural, n):
        return f"⟦{singular if n == 1 else plural}⟧"

    gettext, ngettext = ugettext, ungettext


# The data the test made, and the formats payapp shows data in: none of it is to be translated.
DATA = [
    re.compile(p)
    for p in (
        r"Bright Smile Dental",
        r"Jane Q Doe|Dee Data",
        r"INV-1001",
        r"[\w.+-]+@example\.com",
        r"[\w.+-]+@$|^example\.com",  # an address the link page splits at <wbr> after its @
        r"−?\$[\d,]+\.\d\d",
        # Dates and times (local_time, chart days): formatted, not translated, in this issue.
        r"[A-Z][a-z]{2} \d{1,2}(, \d{4})?(, \d{1,2}:\d{2} [AP]M [A-Z]{2,4})?",
        r"[A-Z][a-z]+ \d{1,2}, \d{4}",  # long dates on the dashboard
        r"America/New_York",
        r"Visa",  # the card brand Square names
        r"payapp",  # the product's name
        r"\b[A-Z][A-Z_]{3,}\b",  # Square's codes, shown raw in a tooltip
        r"ending \d{4}",  # audit details are stored words ("Visa ending 1111"), shown as stored
    )
]


def untranslated_words(html: str, labels: set[str]) -> list[str]:
    while re.search(r"⟦[^⟦⟧]*⟧", html):  # translated, with any markup and data inside
        html = re.sub(r"⟦[^⟦⟧]*⟧", " ", html)
    parser = _VisibleText()
    parser.feed(html)
    left = []
    # A marked message with placeholders matches with any value in them.
    filled = [
        re.compile(r".+?".join(map(re.escape, re.split(r"%\(\w+\)s", label))))
        for label in sorted(labels, key=len, reverse=True)
    ]
    for text in parser.words:
        for message in filled:
            text = message.sub(" ", text)
        for pattern in DATA:
            text = pattern.sub(" ", text)
        if WORDS.search(text):
            left.append(text.strip())
    return left


def test_the_main_staff_pages_show_no_word_the_catalogue_did_not_translate(
    app, admin, link_factory, monkeypatch
):
    import flask_babel

    paid = link_factory()
    other = link_factory(patient_name="Dee Data", email="dee@example.com")
    client = app.test_client()
    submit_card(client, paid.path, nonce="cnon:card-nonce-declined")
    submit_card(client, paid.path)
    monkeypatch.setattr(flask_babel.Domain, "get_translations", lambda self: _Brackets())
    pages = {
        url: admin.get(url)
        for url in (
            "/links",
            "/links/new",
            f"/links/{paid.id}",
            f"/links/{other.id}",
            "/dashboard",
            "/users",
            "/users/1",
            "/account",
            "/problems",
            "/exports",
            "/security",
        )
    }
    pages["created"] = staff_post(
        admin,
        "/links/new",
        {
            "patient_name": "Dee Data",
            "email": "dee@example.com",
            "amount": "10",
            "expires_in_days": "14",
            "language": "en",
            "send_now": "y",
        },
        follow_redirects=True,
    )
    pages["bad export dates"] = admin.get("/exports/links.csv?from=2025-03-09&to=2025-03-01")
    pages["bad period"] = admin.get("/dashboard?period=custom&from=2025-03-09&to=2025-03-01")
    pages["weak password"] = staff_post(
        admin, "/users/new", {"email": "new@example.com", "role": "staff", "password": "x"}
    )
    pages["taken email"] = staff_post(
        admin,
        "/users/new",
        {"email": "admin@example.com", "role": "staff", "password": "maple lantern orbit river"},
    )
    stranger = app.test_client()
    form = stranger.get("/login").text
    pages["refused login"] = stranger.post(
        "/login",
        data={"csrf_token": csrf_from(form), "email": "no@example.com", "password": "wrong-one"},
    )
    pages["cancelled"] = staff_post(
        admin, f"/links/{other.id}/cancel", page_url=f"/links/{other.id}", follow_redirects=True
    )
    # No allowance for words marked where written (labels, domain messages): pages translate
    # them where they show them, so each must come out translated.
    labels: set[str] = set()
    inventory = app.extensions["payapp.inventory"]  # the script inventory's own words (data)
    for script in [*inventory.scripts.values(), *inventory.external]:
        labels |= {str(v) for v in script.values() if isinstance(v, str) and v}
    for url, response in pages.items():
        assert response.status_code in (200, 422), url
        assert "⟦" in response.text, url
        assert untranslated_words(response.text, labels) == [], (
            url,
            untranslated_words(response.text, labels),
        )


# --- messages the domain writes for staff (links.py, money.py, refunds.py) ---------------------

# Modules whose messages reach a staff page through an error: each sentence is written inside
# staff_text() / patient_text() where it is raised, and translated by the view that shows it.
MESSAGE_MODULES = [
    "links.py",
    "money.py",
    "refunds.py",
    "plaintext.py",
    "accounts.py",
    "passwords.py",
    "problems.py",
    "metrics.py",
    "exports.py",
    "link_requests.py",
    "errors.py",
    "decline_reasons.py",
    "gateways/square_troubleshooting.py",
]
SENTENCE = re.compile(r"^[A-Z][a-z']*\s+\S.*[a-z)\d]\.?$")
MARKING = TRANSLATING | {"staff_text", "patient_text"}
# Written but never shown as a sentence to translate: logs, and stored audit details (records
# in the language they were written in; see docs/developer.md, Translations).
NOT_SHOWN_CALLS = {"debug", "info", "warning", "error", "exception"}


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def unmarked_messages(source: str) -> list[str]:
    """Sentences in a domain module written outside staff_text/patient_text (docstrings, logs
    and audit details aside)."""
    tree = ast.parse(source)
    skip: set[int] = set()

    def skip_all(node: ast.AST) -> None:
        skip.update(id(sub) for sub in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and _text(first.value) is not None:
                skip_all(first)
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name in MARKING or name in NOT_SHOWN_CALLS:
                skip_all(node)
            for keyword in node.keywords:
                if keyword.arg == "detail":
                    skip_all(keyword)
    found = []
    for node in ast.walk(tree):
        text = _text(node) if id(node) not in skip else None
        if text is not None and SENTENCE.search(text.strip()):
            found.append(f"line {node.lineno}: {text!r}")
            skip_all(node)
    return found


@pytest.mark.parametrize("module", MESSAGE_MODULES)
def test_every_message_a_domain_module_raises_for_staff_is_marked(module):
    assert unmarked_messages((ROOT / "payapp" / module).read_text()) == []


def test_the_message_check_finds_unmarked_sentences():
    source = '''
def clean(x):
    """Docstrings are not messages."""
    errors["name"] = "Enter the patient's name."
    errors["amount"] = f"The amount can be at most {x}."
    raise RefundError(f"You can refund at most {x} of this payment.")
    raise LinkError(kind, "This link is still open; resend it instead of reissuing.")
    return "The payment processor refused the refund."
'''
    assert len(unmarked_messages(source)) == 5
    marked = """
def clean(x):
    errors["name"] = staff_text("Enter the patient's name.")
    errors["amount"] = staff_text("The amount can be at most %(amount)s.", amount=x)
    raise LinkError(kind, patient_text("This payment link has expired."))
    log.warning("Refund %s still unsettled", x)
    audit.record(session, action, detail=f"Refund of {x} requested")
    return exc.message
"""
    assert unmarked_messages(marked) == []


def test_a_domain_message_is_stored_in_english_and_translated_only_when_shown(app, monkeypatch):
    """The domain never translates: its messages read as English wherever they go (logs, the
    command line, stored text); i18n.translate, which the views call, translates them whole
    with their values."""
    import flask_babel

    from payapp import i18n, links, money, refunds
    from payapp.plaintext import INVISIBLE_MESSAGES

    monkeypatch.setattr(flask_babel.Domain, "get_translations", lambda self: _Brackets())
    rules = links.LinkRules.from_config(app.config)
    draft = links.LinkDraft(
        patient_name="x" * 121,
        email="x@",
        phone="123",
        amount="12.345",
        reference="r" * 41,
        description="d" * 201,
        expires_in_days="abc",
        language="fr",
        postal_code="1234",
        min_payment="0.50",
    )
    with app.test_request_context("/links/new"):
        with pytest.raises(links.LinkInputError) as raised:
            links.clean_draft(draft, rules)
        messages = list(raised.value.errors.values())
        with pytest.raises(money.AmountError) as too_large:
            money.parse_amount("99", 100, 1000)
        messages += [too_large.value.message, *INVISIBLE_MESSAGES.values()]
        messages.append(refunds._refund_error_message(refunds.GatewayError("CARD_EXPIRED")))
        assert len(messages) == 10 + 1 + len(INVISIBLE_MESSAGES) + 1
        assert not any("⟦" in message for message in messages)
        assert "The name can be at most 120 characters." in messages
        assert "The minimum part payment must be at least $1.00." in messages
        assert "The amount can be at most $10.00." in messages
        shown = [i18n.translate(message) for message in messages]
    assert "⟦The name can be at most 120 characters.⟧" in shown
    assert "⟦The minimum part payment must be at least $1.00.⟧" in shown
    assert "⟦The amount can be at most $10.00.⟧" in shown
    assert "⟦The payment processor refused the refund (CARD_EXPIRED). Nothing was refunded.⟧" in (
        shown
    )
    assert all(text.startswith("⟦") and text.endswith("⟧") for text in shown), shown


def _errors_shown(html: str) -> list[str]:
    """The field errors and flash alerts of a page: where the domain's messages appear."""
    return re.findall(r'<p class="field-error"[^>]*>(.*?)</p>', html, re.S) + re.findall(
        r'<div class="alert[^"]*"[^>]*>(.*?)</div>', html, re.S
    )


NEW_LINK_ERRORS = {
    "every field wrong": {
        "patient_name": "x" * 121,
        "email": "x@",
        "phone": "123",
        "amount": "12.345",
        "reference": "r" * 41,
        "description": "d" * 201,
        "expires_in_days": "abc",
        "language": "fr",
        "postal_code": "1234",
        "min_payment": "0.50",
        "send_now": "y",
    },
    "nothing typed": {"send_now": "y"},
    "invisible characters": {
        "patient_name": "Jane\u202eDoe",
        "email": "a\u200b@example.com",
        "phone": "212\u200b5550123",
        "amount": "10",
        "reference": "INV\u200b1",
        "description": "x\u2028y",
    },
    "amounts out of range": {"patient_name": "Dee Data", "amount": "99999999", "min_payment": "x"},
    "minimum above the amount": {"patient_name": "Dee Data", "amount": "10", "min_payment": "20"},
    "minimum with cents": {"patient_name": "Dee Data", "amount": "10", "min_payment": "1.234"},
}


@pytest.mark.parametrize("case", NEW_LINK_ERRORS, ids=str)
def test_the_new_link_forms_error_messages_are_translated_where_shown(admin, monkeypatch, case):
    import flask_babel

    form = admin.get("/links/new").text
    monkeypatch.setattr(flask_babel.Domain, "get_translations", lambda self: _Brackets())
    response = admin.post(
        "/links/new", data={"csrf_token": csrf_from(form), **NEW_LINK_ERRORS[case]}
    )
    assert response.status_code == 422
    errors = _errors_shown(response.text)
    assert len(errors) >= 2  # the form's alert and at least one field
    # No allowance for words marked where written: each message must be translated whole.
    assert untranslated_words("".join(errors), set()) == [], errors


REFUND_ERRORS = [
    ("abc", "overpaid", "k"),  # not an amount
    ("1.234", "overpaid", "k"),  # cents
    ("0", "overpaid", "k"),  # below one cent
    ("10", "", "k"),  # no reason
    ("10", "over\u202epaid", "k"),  # an invisible character in the reason
    ("10", "r" * 300, "k"),  # too long
    ("10", "overpaid", ""),  # an old form
    ("500", "overpaid", "k"),  # more than can be refunded
]


def test_refund_and_link_action_errors_are_translated_where_shown(
    app, admin, link_factory, monkeypatch
):
    import flask_babel

    paid, other = link_factory(), link_factory(patient_name="Dee Data")
    submit_card(app.test_client(), paid.path)
    page = admin.get(f"/links/{paid.id}").text
    payment_id = re.search(r'name="payment_id" value="(\d+)"', page)[1]
    staff_post(admin, f"/links/{other.id}/cancel", page_url=f"/links/{other.id}")
    monkeypatch.setattr(flask_babel.Domain, "get_translations", lambda self: _Brackets())
    shown = {}
    for amount, reason, key in REFUND_ERRORS:
        form = {"payment_id": payment_id, "refund_key": key, "amount": amount, "reason": reason}
        answer = staff_post(
            admin,
            f"/links/{paid.id}/refund",
            form,
            page_url=f"/links/{paid.id}",
            follow_redirects=True,
        )
        shown[f"refund {amount} {reason[:12]!r} {key!r}"] = answer
    for action in ("cancel", "reissue"):  # cancelled: no second cancel; paid: no reissue
        link = other if action == "cancel" else paid
        shown[action] = staff_post(
            admin,
            f"/links/{link.id}/{action}",
            page_url=f"/links/{link.id}",
            follow_redirects=True,
        )
    page = admin.get(f"/links/{other.id}").text
    shown["cancel (htmx)"] = admin.post(
        f"/links/{other.id}/cancel",
        data={"csrf_token": csrf_from(page)},
        headers={"HX-Request": "true"},
    )
    for what, response in shown.items():
        errors = [e for e in _errors_shown(response.text) if "⟦" in e]
        assert errors, what
        if what.startswith("refund"):  # the reason inside the view's sentence is translated too
            assert any(re.fullmatch(r"⟦Refund not made: ⟦[^⟦⟧]+⟧⟧", e) for e in errors), errors
        assert untranslated_words("".join(errors), set()) == [], (what, errors)


def test_the_invisible_characters_message_is_translated_on_the_users_and_problems_pages(
    app, client, admin, link_factory, monkeypatch
):
    import flask_babel

    from .test_problems import report_problem, stored_reports

    report_problem(client, link_factory())
    [report] = stored_reports(app)
    users_form, problems_page = admin.get("/users/new").text, admin.get("/problems").text
    monkeypatch.setattr(flask_babel.Domain, "get_translations", lambda self: _Brackets())
    new_user = admin.post(
        "/users/new",
        data={
            "csrf_token": csrf_from(users_form),
            "email": "new\u200b@example.com",
            "role": "staff",
            "password": "maple lantern orbit river",
        },
    )
    admin.post(
        f"/problems/{report.id}/resolve",
        data={"csrf_token": csrf_from(problems_page), "note": "ok\u202e"},
    )
    resolved = admin.get("/problems")
    for response in (new_user, resolved):
        errors = [e for e in _errors_shown(response.text) if "invisible" in e]
        assert errors and all(e.startswith("⟦Remove the invisible") for e in errors), errors


GATEWAY_DETAILS = {
    "AUTHENTICATION_ERROR/UNAUTHORIZED": "Square rejected payapp&#39;s access token",
    "INVALID_REQUEST_ERROR/NOT_FOUND": "Square could not find something payapp asked for",
    "API_ERROR/SOMETHING_NEW": "Square refused a payment request (API_ERROR/SOMETHING_NEW).",
}


def test_square_hints_and_surge_descriptions_on_the_banner_are_translated_where_shown(
    app, admin, link_factory, monkeypatch
):
    import flask_babel

    from payapp import audit
    from payapp.db import get_session
    from payapp.models import utcnow
    from payapp.states import AuditAction

    from .test_alerts_pages import fail_card_payments

    assert fail_card_payments(app, link_factory)
    monkeypatch.setattr(flask_babel.Domain, "get_translations", lambda self: _Brackets())
    for detail, hint in GATEWAY_DETAILS.items():
        with app.app_context():
            audit.record(get_session(), AuditAction.GATEWAY_ERROR, when=utcnow(), detail=detail)
            get_session().commit()
        html = admin.get("/links").text
        banner = re.search(r'<div class="container alerts">(.*?)</div>', html, re.S)[1]
        assert f"⟦{hint}" in banner, banner  # the hint, translated whole
        surge = re.search(r'<div class="container alerts" id="surge-alerts">.*?</form>', html, re.S)
        assert "⟦3 card payment failures of 3 in the window (100%; usually 0%)⟧" in surge[0]
        assert untranslated_words(banner + surge[0], set()) == []  # codes and times are data


def test_the_surge_sentences_read_each_kinds_label_as_before():
    """One sentence per kind for the translator; in English, the kind's label mid-sentence."""
    from payapp.alerts import DESCRIPTIONS
    from payapp.states import SurgeKind

    assert set(DESCRIPTIONS) == set(SurgeKind)
    for kind, sentence in DESCRIPTIONS.items():
        assert sentence == (
            f"%(failures)s {kind.label} of %(total)s in the window (%(rate)s; usually %(baseline)s)"
        )


def test_messages_with_values_from_other_domain_modules_are_translated_whole(
    app, admin, monkeypatch
):
    """Period, export and account messages carry their values (%(max)s, %(email)s) to the
    page, which translates the sentence whole instead of showing it as formatted English."""
    import flask_babel

    users_form = admin.get("/users/new").text
    monkeypatch.setattr(flask_babel.Domain, "get_translations", lambda self: _Brackets())
    strong = "maple lantern orbit river"
    pages = {
        "export too long": admin.get("/exports/links.csv?from=2020-01-01&to=2026-01-01"),
        "export not a date": admin.get("/exports/links.csv?from=03/01/2030&to=2025-03-01"),
        "period too long": admin.get("/dashboard?period=custom&from=2020-01-01&to=2026-01-01"),
    }
    for what, data in {
        "short password": {"email": "new@example.com", "role": "staff", "password": "x"},
        "taken email": {"email": "admin@example.com", "role": "staff", "password": strong},
    }.items():
        pages[what] = admin.post("/users/new", data={"csrf_token": csrf_from(users_form), **data})
    for what, response in pages.items():
        assert response.status_code in (200, 422), what
        errors = [e for e in _errors_shown(response.text) if "⟦" in e]
        assert errors, (what, _errors_shown(response.text))
        assert untranslated_words("".join(errors), set()) == [], (what, errors)


def test_staff_error_pages_are_translated_where_shown(staff, monkeypatch):
    import flask_babel

    monkeypatch.setattr(flask_babel.Domain, "get_translations", lambda self: _Brackets())
    for url, code in (("/users", 403), ("/links/999999", 404), ("/no-such-page", 404)):
        response = staff.get(url)
        assert response.status_code == code, url
        main = re.search(r"<main.*?</main>", response.text, re.S)[0]
        assert "⟦" in main and untranslated_words(main, set()) == [], (url, main)


def test_the_staff_text_bench_runs_both_modes_on_both_pages(capsys):
    from bench import staff_text

    assert staff_text.main(["-n", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("as written (str, baseline)") == 2
    assert printed.count("translated where shown") == 2
