"""The gate every proactive message passes (主动推送): one decision, with its reason.

Pure functions over plain data; :mod:`octim.domain.outreach.notices` (and campaigns, when
they come) ask :func:`decide` and record what it said (:func:`decision_op`), so every
"sent" and every "not sent" can be read back per buyer (docs/outreach.md).

* **Category.** ``service`` (an order shipped, a refund moved) or ``marketing`` (a price
  drop, a campaign). Service notices pass opt-outs of marketing, quiet hours and caps; a
  shop may still switch each notice type off.
* **Consent and opt-outs** (marketing). The buyer's ``opt_outs`` (on the customer record)
  hold ``marketing`` (every shop), ``marketing:<shop>`` (one shop; a buyer who replies 退订
  or TD in that shop's chat gets it) or the message's ``type``. Marketing also needs
  consent: ``attributes.marketing_consent`` true on the customer (the platform knows it).
* **Quiet hours** (marketing): 22:00–08:00 by default, in the buyer's time zone
  (``attributes.timezone``, else the shop's, else Asia/Shanghai).
* **Frequency caps** (marketing): per buyer per shop per day and per week, and per buyer
  across the platform per day; counted in ``outreach_counts``.
* **Suppression** (marketing): not while the buyer has an open ticket with that shop
  (new, open, pending or on hold).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CATEGORIES = ("service", "marketing")
DEFAULT_ZONE = "Asia/Shanghai"
CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


@dataclass(frozen=True, slots=True)
class GateSettings:
    """A shop's outreach limits (``settings.outreach`` of the shop; every field optional,
    and one of the wrong type or range is ignored for its default)."""

    quiet_start: str = "22:00"
    quiet_end: str = "08:00"
    per_shop_day: int = 2
    per_shop_week: int = 5
    per_platform_day: int = 5

    @classmethod
    def from_record(cls, raw: Any) -> GateSettings:
        if not isinstance(raw, dict):
            return cls()
        known: dict[str, Any] = {}
        for name in ("quiet_start", "quiet_end"):  # "HH:MM"; anything else: the default
            value = raw.get(name)
            if isinstance(value, str) and CLOCK.fullmatch(value):
                known[name] = value
        for name in ("per_shop_day", "per_shop_week", "per_platform_day"):
            value = raw.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1000:
                known[name] = value
        return cls(**known)


@dataclass(frozen=True, slots=True)
class Counts:
    """Marketing messages this buyer already got: from the shop today and this week (the
    buyer's days), and from every shop today."""

    shop_day: int = 0
    shop_week: int = 0
    platform_day: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str  # "ok", or why not (docs/outreach.md lists them)


def buyer_zone(customer: dict[str, Any] | None, shop_zone: str = DEFAULT_ZONE) -> ZoneInfo:
    """The buyer's time zone (``attributes.timezone``), else the shop's."""
    for name in ((customer or {}).get("attributes", {}).get("timezone"), shop_zone,
                 DEFAULT_ZONE):
        if isinstance(name, str) and name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo(DEFAULT_ZONE)


def _minutes(clock: str) -> int:
    hours, _, minutes = clock.partition(":")
    return int(hours) * 60 + int(minutes or 0)


def in_quiet_hours(now_ms: int, zone: ZoneInfo, settings: GateSettings) -> bool:
    local = datetime.datetime.fromtimestamp(now_ms / 1000, zone)
    minute = local.hour * 60 + local.minute
    start, end = _minutes(settings.quiet_start), _minutes(settings.quiet_end)
    if start == end:
        return False
    return start <= minute < end if start < end else minute >= start or minute < end


def day_keys(now_ms: int, zone: ZoneInfo) -> tuple[str, str]:
    """The buyer's day (``YYYY-MM-DD``) and ISO week (``YYYY-Www``) at ``now_ms``."""
    local = datetime.datetime.fromtimestamp(now_ms / 1000, zone).date()
    year, week, _ = local.isocalendar()
    return local.isoformat(), f"{year}-W{week:02d}"


def decide(*, category: str, kind: str, shop: str, customer: dict[str, Any] | None,
           now_ms: int, zone: ZoneInfo, settings: GateSettings, counts: Counts,
           open_issue: bool, enabled: bool = True) -> Decision:
    """Whether one proactive message of ``kind`` may go to this buyer now, and why."""
    if category not in CATEGORIES:
        raise ValueError(f"category is one of {CATEGORIES}")
    if not enabled:
        return Decision(False, "switched_off")
    if category == "service":
        return Decision(True, "ok")
    profile = customer or {}
    opt_outs = set(profile.get("opt_outs") or ())
    if opt_outs & {"marketing", f"marketing:{shop}", kind}:
        return Decision(False, "opted_out")
    if (profile.get("attributes") or {}).get("marketing_consent") is not True:
        return Decision(False, "no_consent")
    if open_issue:
        return Decision(False, "open_complaint")
    if in_quiet_hours(now_ms, zone, settings):
        return Decision(False, "quiet_hours")
    if counts.shop_day >= settings.per_shop_day:
        return Decision(False, "cap_shop_day")
    if counts.shop_week >= settings.per_shop_week:
        return Decision(False, "cap_shop_week")
    if counts.platform_day >= settings.per_platform_day:
        return Decision(False, "cap_platform_day")
    return Decision(True, "ok")
