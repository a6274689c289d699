import pytest

from payapp.money import AmountError, cents_to_decimal_string, format_cents, parse_amount

MIN, MAX = 100, 2_500_000


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("125", 12500),
        ("125.5", 12550),
        ("125.50", 12550),
        (" 125.05 ", 12505),
        ("$1,250.00", 125000),
        ("1.00", 100),
        ("25000.00", 2_500_000),
        ("25,000", 2_500_000),
        ("0019.99", 1999),
    ],
)
def test_amounts_are_parsed_into_integer_cents(text, cents):
    result = parse_amount(text, MIN, MAX)
    assert result == cents
    assert isinstance(result, int)


def test_float_rounding_cannot_creep_in():
    # 0.1 + 0.2 style errors: 19.99 must be exactly 1999 cents, and 4.35 exactly 435.
    assert parse_amount("19.99", MIN, MAX) == 1999
    assert parse_amount("4.35", MIN, MAX) == 435


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("12.345", "two decimal places"),
        ("0.99", r"at least \$1\.00"),
        ("25000.01", r"at most \$25,000\.00"),
        ("-5.00", "for example 125.00"),
        ("", "for example 125.00"),
        ("abc", "for example 125.00"),
        ("1e3", "for example 125.00"),
        ("NaN", "for example 125.00"),
        ("12,34.00", "for example 125.00"),
        ("12.", "for example 125.00"),
        ("１２５", "for example 125.00"),  # full-width digits are not accepted silently
    ],
)
def test_bad_amounts_are_refused_with_a_clear_message(text, message):
    with pytest.raises(AmountError, match=message):
        parse_amount(text, MIN, MAX)


def test_limits_are_configurable():
    assert parse_amount("0.50", 50, 1000) == 50
    with pytest.raises(AmountError, match=r"at most \$10.00"):
        parse_amount("10.01", 50, 1000)


def test_money_is_formatted_for_people_and_for_square():
    assert format_cents(1_250_050) == "$12,500.50"
    assert format_cents(5) == "$0.05"
    assert format_cents(1000, "CAD") == "10.00 CAD"
    assert cents_to_decimal_string(1500) == "15.00"
    assert cents_to_decimal_string(7) == "0.07"


@pytest.mark.parametrize(
    "text, kind, cents, message",
    [
        (
            "ten",
            "not_an_amount",
            None,
            "Enter the amount in dollars and cents, for example 125.00.",
        ),
        ("1.001", "too_precise", None, "Amounts have at most two decimal places (cents)."),
        ("0.50", "too_small", 100, "The amount must be at least $1.00."),
        ("10.01", "too_large", 1000, "The amount can be at most $10.00."),
    ],
)
def test_an_amount_error_names_why_and_the_bound_it_broke(text, kind, cents, message):
    """A caller says the same about its own field in a whole sentence (links.py's minimum part
    payment); the message keeps its msgid and amount so a staff page can translate it."""
    with pytest.raises(AmountError) as raised:
        parse_amount(text, 100, 1000)
    assert (raised.value.kind, raised.value.cents) == (kind, cents)
    assert raised.value.message == str(raised.value) == message
    if cents is not None:
        assert raised.value.message.msgid.endswith("%(amount)s.")
        assert raised.value.message.values == {"amount": message.split()[-1].rstrip(".")}
