"""The clinic as patients and staff see it: its name, phone number and time zone (from config),
and how a time reads in that zone. Pages, emails, texts and exports all show times through this."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date


@dataclass(frozen=True)
class Clinic:
    name: str
    phone: str
    timezone: str = "America/New_York"

    @classmethod
    def from_config(cls, cfg) -> Clinic:
        return cls(str(cfg["CLINIC_NAME"]), str(cfg["CLINIC_PHONE"]), str(cfg["CLINIC_TIMEZONE"]))

    def local_date(self, when: datetime) -> str:
        """'March 5, 2027' in the clinic's time zone."""
        return self.local_time(when, "date")

    def patient_date(self, when: datetime | None, language: str = "en") -> str:
        """A date as a patient reads it in their language, in the clinic's zone: 'March 5, 2027'
        or '5 de marzo de 2027' (Babel's es-US long date)."""
        if when is None:
            return ""
        if language != "es":
            return self.local_date(when)
        local = when.astimezone(ZoneInfo(self.timezone))
        return format_date(local.date(), "long", locale="es_US")

    def local_time(self, when: datetime | None, style: str = "datetime") -> str:
        """A UTC time as the clinic reads it: 'Mar 5, 2027, 11:30 PM EST' (datetime),
        'March 5, 2027' (date), '11:30 PM EST' (time) or '2027-03-05T23:30:00-05:00' (iso)."""
        if when is None:
            return ""
        local = when.astimezone(ZoneInfo(self.timezone))
        clock = f"{local.hour % 12 or 12}:{local:%M} {local:%p} {local:%Z}"
        if style == "date":
            return f"{local:%B} {local.day}, {local.year}"
        if style == "time":
            return clock
        if style == "iso":
            return local.isoformat()
        return f"{local:%b} {local.day}, {local.year}, {clock}"
