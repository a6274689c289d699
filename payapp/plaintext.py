"""Text that staff type: refuse characters a person cannot see.

Control and format characters (line and paragraph separators such as U+2028 and U+0085,
bidirectional overrides and isolates such as U+202E and U+2066, zero-width characters) are
invisible on screen but change what an email header, a text message or a page shows: a subject
line that the email library refuses, or a name that reads backwards. Nothing a clinic types
needs them, so every staff-entered field refuses them with a message instead of storing them.

Also the markers for the catalogue: ``patient_text`` and ``staff_text`` mark a message where it
is written and keep it English until a page shows it (docs/developer.md, Translations).
"""

from __future__ import annotations

import unicodedata

# Cc control, Cf format (bidi, zero-width), Zl/Zp line and paragraph separators, Co private use,
# Cs surrogates, Cn unassigned.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
LINE_BREAKS = "\r\n\t"


def has_invisible_characters(text: str, *, allow: str = "") -> bool:
    """Whether ``text`` holds a control or format character other than those in ``allow``."""
    return any(
        unicodedata.category(char) in INVISIBLE_CATEGORIES and char not in allow for char in text
    )


class MarkedText(str):
    """A message holding values: reads as its English sentence (what is stored, logged or
    printed), and keeps the catalogue's ``msgid`` and the ``values`` so the page that shows it
    can translate it then (``i18n.translate``, the templates' ``_()``)."""

    msgid: str
    values: dict[str, int | str]


class PatientText(MarkedText):
    """A patient's message with numbers (``patient_text``)."""


class StaffText(MarkedText):
    """A message staff read, with values such as an amount or a limit (``staff_text``)."""


def _marked(cls: type[MarkedText], text: str, values: dict) -> MarkedText:
    message = cls(text % values)
    message.msgid, message.values = text, values
    return message


def patient_text(text: str, /, **values: int) -> str:
    """Marks a message a patient may read for the Spanish catalogue (``pybabel extract -k
    patient_text``); the page translates it where it shows it (payapp/i18n.py). Numbers go in
    as named values (``%(count)s``), never formatted into the sentence, so it stays one entry."""
    if not values:
        return text
    if not all(isinstance(v, int) for v in values.values()):
        raise TypeError("patient_text values are numbers")
    return _marked(PatientText, text, values)


def staff_text(text: str, /, **values: int | str) -> str:
    """Marks words staff read for the catalogue (``pybabel extract -k staff_text``). The result
    is the English ``str`` (stored audit details keep it as written); the view or template that
    shows it translates it then (``i18n.translate``, the templates' ``| translated``). Values
    (a limit, an amount already formatted) go in by name, so the sentence stays one entry."""
    if not values:
        return text
    if not all(isinstance(v, int | str) for v in values.values()):
        raise TypeError("staff_text values are numbers or formatted text")
    return _marked(StaffText, text, values)


# One whole sentence per field, so a translator never fits a phrase into another sentence.
INVISIBLE_MESSAGES = {
    "patient_name": staff_text(
        "Remove the invisible or control characters from the patient's name "
        "(retype it rather than paste)."
    ),
    "email": staff_text(
        "Remove the invisible or control characters from the email address "
        "(retype it rather than paste)."
    ),
    "phone": staff_text(
        "Remove the invisible or control characters from the mobile number "
        "(retype it rather than paste)."
    ),
    "reference": staff_text(
        "Remove the invisible or control characters from the reference "
        "(retype it rather than paste)."
    ),
    "description": staff_text(
        "Remove the invisible or control characters from the description "
        "(retype it rather than paste)."
    ),
    "reason": staff_text(
        "Remove the invisible or control characters from the reason (retype it rather than paste)."
    ),
    "note": staff_text(
        "Remove the invisible or control characters from the note (retype it rather than paste)."
    ),
    # The patient's problem report: in the patient's language.
    "message": patient_text(
        "Remove the invisible or control characters from your message "
        "(retype it rather than paste)."
    ),
}


def invisible_message(field: str) -> str:
    """The message for ``field`` (a key of ``INVISIBLE_MESSAGES``): what to do next, in plain
    words, marked for the catalogue."""
    return INVISIBLE_MESSAGES[field]
