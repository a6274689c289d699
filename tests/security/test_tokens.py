"""Forged, mangled, re-signed and expired payment-link tokens (requirement T1).

10,000 candidate tokens are made from a real link's token: every character changed, dropped,
doubled or swapped, truncations and extensions, base64 garbage, the payload re-signed with other
keys and other salts, later and earlier expiries and other link ids signed with the real key and
salt, other signed values of the app (the CSRF token, the session cookie), unicode, path
traversal, empty and very long strings. None may name a link. The domain function checks them
all; a sample goes through HTTP, where every one must get the same 404 page.
"""

from __future__ import annotations

import random
import string
from datetime import timedelta
from urllib.parse import quote

import pytest
from itsdangerous import (
    Signer,
    URLSafeSerializer,
    URLSafeTimedSerializer,
)
from itsdangerous.encoding import base64_decode

from payapp.db import get_session
from payapp.links import TOKEN_SALT, LinkError, resolve_token
from payapp.models import Payment, PaymentLink, utcnow

from ..conftest import TEST_SECRET, open_pay_page, submit_card
from .conftest import normalized

URLSAFE = string.ascii_letters + string.digits + "-_"
ODD = ".=+/~!%*$&'()[]{}:;,@ é\u202e\x00"
TOTAL = 10_000
HTTP_SAMPLE = 200


def payload_of(token: str) -> list:
    return URLSafeSerializer(TEST_SECRET, salt=TOKEN_SALT).loads(token)


def spelling_of(candidate: str, token: str) -> bool:
    """Whether ``candidate`` is ``token`` written differently: the same signed text and the same
    signature bytes once base64-decoded (itsdangerous decodes leniently)."""
    value, _, sig = token.rpartition(".")
    c_value, dot, c_sig = candidate.rpartition(".")
    if not dot or c_value != value:
        return False
    try:
        return base64_decode(c_sig) == base64_decode(sig)
    except Exception:  # noqa: BLE001 - undecodable is simply not the same signature
        return False


def signed(payload, *, key=TEST_SECRET, salt=TOKEN_SALT) -> str:
    return URLSafeSerializer(key, salt=salt).dumps(payload)


def candidates(token: str, public_id: str, expires: int, other_id: str, extra: list[str]):
    """At least TOTAL distinct strings, none of them the token itself."""
    rng = random.Random(20261126)  # noqa: S311 - reproducible test data, not a secret
    out: dict[str, None] = {}

    def add(*items):
        for item in items:
            if item != token:
                out.setdefault(item, None)

    n = len(token)
    # Every position changed to every URL-safe character and some odd ones.
    for i in range(n):
        for c in URLSAFE + ODD:
            add(token[:i] + c + token[i + 1 :])
    # Dropped, doubled, swapped and case-flipped characters; an odd character slipped in.
    for i in range(n):
        add(token[:i] + token[i + 1 :], token[:i] + token[i] + token[i:])
        add(token[:i] + token[i].swapcase() + token[i + 1 :])
        if i + 1 < n:
            add(token[:i] + token[i + 1] + token[i] + token[i + 2 :])
        for c in ".=A-":
            add(token[:i] + c + token[i:])
    # Truncations from either end, extensions.
    for i in range(n):
        add(token[:i], token[i + 1 :])
    for c in URLSAFE + ODD:
        add(token + c, c + token)
    add(token + token, token + "." + token.rpartition(".")[2], token.upper(), token.lower())
    add(token.swapcase(), token.replace(".", ""), token.replace(".", ".."), token[::-1])
    value, _, sig = token.rpartition(".")
    add(sig + "." + value, value, sig, value + ".", "." + sig)
    # Re-signed: other keys (the shipped development key among them) and other salts.
    for key in ("dev-only-not-secret", "", "secret", "changeme", TEST_SECRET + "x"):
        add(signed([public_id, expires], key=key))
    add(signed([public_id, expires], key=TEST_SECRET[:-1]))
    add(signed([public_id, expires], key=TEST_SECRET.upper()))
    for _ in range(300):
        add(signed([public_id, expires], key=rng.randbytes(32).hex()))
    for salt in (
        "itsdangerous",
        "",
        "payapp.pay-link.v2",
        "payapp.pay-link.v0",
        "payapp",
        TOKEN_SALT.upper(),
        "cookie-session",
        "wtf-csrf-token",
    ):
        add(signed([public_id, expires], salt=salt))
    for digest_key in ("hmac", "none", "concat"):
        signer = Signer(TEST_SECRET, salt=TOKEN_SALT, key_derivation=digest_key)
        add(signer.sign(value).decode())
    # Signed with the real key and salt, but a later or earlier expiry, another or a made-up id,
    # or a payload of another shape.
    for delta in (1, -1, 60, 3600, 86_400, 30 * 86_400, 365 * 86_400, 10 * 365 * 86_400):
        add(signed([public_id, expires + delta]))
    for ts in (0, -1, 2**31, 2**63, 10**30, float(expires), str(expires), None, True, [expires]):
        add(signed([public_id, ts]))
    made_up = [
        other_id.upper(),
        public_id + "x",
        public_id[:-1],
        public_id.upper(),
        "",
        " ",
        "%",
        "_",
        "' OR '1'='1",
        "integrity-check",  # the sample link check-integrity renders
        "../" + public_id,
    ] + ["".join(rng.choice(URLSAFE) for _ in range(16)) for _ in range(100)]
    for pid in made_up:
        add(signed([pid, expires]))
    add(signed([other_id, expires]))  # another patient's id with this link's expiry
    for shape in (
        public_id,
        [public_id],
        [public_id, expires, "extra"],
        [expires, public_id],
        {"id": public_id, "exp": expires},
        [[public_id], expires],
        [None, expires],
        [1, expires],
        None,
        [],
        {},
        0,
    ):
        add(signed(shape))
    # The app's other signed values (CSRF token, session cookie): same key, other purpose.
    add(*extra)
    # Unicode, path traversal, empty and very long strings.
    fullwidth = token.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    homoglyph = token.replace("a", "\u0430").replace("e", "\u0435").replace("o", "\u043e")
    add(fullwidth, homoglyph, "\u202e" + token, token + "\u200b", token + "\x00", token + "%00")
    add("", " ", ".", "..", "...", "/", "%2e%2e%2f", "..%2f", "..%2f..%2fetc%2fpasswd")
    add("../../etc/passwd", "..;/", "..\\..\\windows\\win.ini", "%00", "\x00", "null")
    add("undefined", "None", "0", "-1", "true", "[]", "{}", "%", "*", "é", "ü" * 50, "😀" * 20)
    add("A" * 199, "A" * 200, "A" * 201, "A" * 1000, "A" * 10_000, token * 3, token + "A" * 200)
    # Base64 garbage shaped like tokens, to make up the ten thousand.
    while len(out) < TOTAL:
        head = "".join(rng.choice(URLSAFE) for _ in range(rng.randint(1, 80)))
        tail = "".join(rng.choice(URLSAFE) for _ in range(rng.randint(0, 40)))
        add(f"{head}.{tail}" if rng.random() < 0.8 else head)
    return list(out)


@pytest.fixture
def forgery_kit(app, client, link_factory):
    """A real link (the target), another patient's link, and 10,000 candidate tokens."""
    target = link_factory(patient_name="Jane Q Doe", email="jane@example.com")
    other = link_factory(
        patient_name="Omar Other", email="omar@example.com", amount="980.00", reference="INV-2002"
    )
    page = open_pay_page(client, target.path)
    session_cookie = client.get_cookie("payapp_session").value
    public_id, expires = payload_of(target.token)
    tokens = candidates(
        target.token, public_id, expires, other.public_id, [page.csrf, session_cookie]
    )
    genuine = {target.token, signed(payload_of(other.token))}
    forged = [t for t in tokens if t not in genuine and not spelling_of(t, target.token)]
    respelled = [t for t in tokens if spelling_of(t, target.token)]
    return target, other, tokens, forged, respelled


def accepted(app, tokens) -> list[str]:
    """The tokens resolve_token does not refuse with LinkError (a link, or an exception)."""
    with app.app_context():
        session = get_session()
        taken = []
        for token in tokens:
            try:
                resolve_token(session, token, app.config["SECRET_KEY"])
            except LinkError:
                continue
            except Exception as exc:  # noqa: BLE001 - an exception is a 500 for the patient
                taken.append((token, repr(exc)[:80]))
                continue
            taken.append(token)
        return taken


def test_ten_thousand_forged_and_mangled_tokens_name_no_link(app, forgery_kit):
    target, _other, tokens, forged, _respelled = forgery_kit
    assert len(tokens) >= TOTAL and len(forged) > TOTAL - 100
    assert accepted(app, forged) == []
    # The real token does name the link: the checks above could have failed.
    with app.app_context():
        link = resolve_token(get_session(), target.token, app.config["SECRET_KEY"])
        assert link.id == target.id


def test_only_the_canonical_spelling_of_a_token_is_accepted(app, client, forgery_kit):
    target, _other, _tokens, _forged, respelled = forgery_kit
    assert len(respelled) >= 5
    assert accepted(app, respelled) == []
    for token in respelled[:5]:
        assert client.get("/pay/" + quote(token, safe="")).status_code == 404


def test_a_validly_signed_token_with_an_unreadable_payload_names_no_link(app, link_factory):
    link = link_factory()
    public_id, expires = payload_of(link.token)
    token = URLSafeTimedSerializer(TEST_SECRET, salt=TOKEN_SALT).dumps([public_id, expires])
    assert accepted(app, [token]) == []


def test_a_sample_of_forged_tokens_gets_the_same_404_page_over_http(app, client, forgery_kit):
    target, other, _tokens, forged, _respelled = forgery_kit
    rng = random.Random(4)  # noqa: S311
    # The hand-made ones (the start of the list) and a random draw from the rest.
    sample = [t for t in forged if len(t) <= 10 or not t.isascii()][:60]
    sample += rng.sample(forged, HTTP_SAMPLE - len(sample))
    sample += ["..%2f..%2fetc%2fpasswd", "..%2f", "%2e%2e%2f"]  # raw, not quoted again below
    reference = client.get("/pay/not-a-token")
    assert reference.status_code == 404
    expected = normalized(reference.text)
    secrets_of_patients = (
        "Jane",
        "jane@example.com",
        "INV-1001",
        "$125.00",
        "Omar",
        "omar@example.com",
        "INV-2002",
        "$980.00",
    )
    for i, token in enumerate(sample):
        path = "/pay/" + (token if i >= len(sample) - 3 else quote(token, safe=""))
        response = client.get(path, follow_redirects=True)
        assert response.status_code == 404, (token, response.status_code)
        assert normalized(response.text) == expected, token
        assert not any(s in response.text for s in secrets_of_patients), token
        assert "no-store" in response.headers["Cache-Control"]
    # The genuine tokens still open their pages: the 404s above are not a broken route.
    assert "Jane" in client.get(target.path).text and "Omar" in client.get(other.path).text


def test_forged_tokens_cannot_be_paid(app, client, gateway, forgery_kit):
    target, _other, _tokens, forged, _respelled = forgery_kit
    page = open_pay_page(client, target.path)
    rng = random.Random(7)  # noqa: S311
    for i, token in enumerate(rng.sample(forged, 25)):
        page.attempt_key = f"forged-attempt-{i:04d}-xxxx"
        response = submit_card(client, "/pay/" + quote(token, safe=""), page=page)
        assert response.status_code == 404, token
    assert gateway.charges == []
    with app.app_context():
        assert get_session().query(Payment).count() == 0


def test_an_expired_link_is_shown_as_expired_and_neither_its_token_nor_a_later_one_pays(
    app, client, gateway, link_factory
):
    link = link_factory()
    with app.app_context():
        session = get_session()
        row = session.get(PaymentLink, link.id)
        row.expires_at = (utcnow() - timedelta(hours=1)).replace(microsecond=0)
        session.commit()
        public_id, expires = row.public_id, int(row.expires_at.timestamp())
        token = signed([public_id, expires])
    closed = client.get(f"/pay/{token}")
    assert closed.status_code == 410 and "expired" in closed.text
    # The token it was sent with (now naming an older expiry) and one claiming a later expiry.
    assert client.get(link.path).status_code == 404
    assert client.get(f"/pay/{signed([public_id, expires + 86_400 * 30])}").status_code == 404
    csrf = open_pay_page(client, link_factory().path).csrf
    response = client.post(
        f"/pay/{token}",
        data={
            "csrf_token": csrf,
            "source_id": "cnon:card-nonce-ok",
            "attempt_key": "expired-attempt-0001-xxxx",
        },
    )
    assert "expired" in response.text and "Payment received" not in response.text
    assert gateway.charges == []
