"""The clinic as patients and staff see it: its name, phone number and time zone (from config),
and how a time reads in that zone. Pages, emails, texts and exports all show times through this."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo


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
