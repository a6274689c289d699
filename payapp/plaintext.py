"""Text that staff type: refuse characters a person cannot see.

Control and format characters (line and paragraph separators such as U+2028 and U+0085,
bidirectional overrides and isolates such as U+202E and U+2066, zero-width characters) are
invisible on screen but change what an email header, a text message or a page shows: a subject
line that the email library refuses, or a name that reads backwards. Nothing a clinic types
needs them, so every staff-entered field refuses them with a message instead of storing them.
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


def invisible_message(what: str) -> str:
    """The message staff see: what to do next, in plain words."""
    return f"Remove the invisible or control characters from {what} (retype it rather than paste)."


class PatientText(str):
    """A patient's message holding numbers: reads as its English sentence, and keeps the
    catalogue's ``msgid`` and the ``values`` so the page can show it in Spanish (i18n.py)."""

    msgid: str
    values: dict[str, int]


def patient_text(text: str, **values: int) -> str:
    """Marks a message a patient may read for the Spanish catalogue (``pybabel extract -k
    patient_text``); the page translates it where it shows it (payapp/i18n.py). Numbers go in
    as named values (``%(count)s``), never formatted into the sentence, so it stays one entry."""
    if not values:
        return text
    if not all(isinstance(v, int) for v in values.values()):
        raise TypeError("patient_text values are numbers")
    message = PatientText(text % values)
    message.msgid, message.values = text, values
    return message


def staff_text(text: str) -> str:
    """Marks words staff read for the catalogue (``pybabel extract -k staff_text``), where a
    plain ``str`` must stay (stored audit details, emails built outside a request). Staff pages
    are English in this issue; a later translation translates them where they are shown."""
    return text
