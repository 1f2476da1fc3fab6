"""A shop's ticket settings: its custom field definitions, categories and custom
statuses (docs/tickets.md). Pure checks over plain data; the TicketDesk keeps the
shop's settings (database ``ticket_settings``) and applies them.

* **Fields** ``{"key", "label", "type": text|number|choice|date, "choices"?, "required"?}``:
  a ticket's ``fields`` then take only these keys, each value of its type (a date is
  ``YYYY-MM-DD``, a choice one of ``choices``); a required one must be given at creation.
  A shop that defines none keeps free-form fields.
* **Categories**: when listed, a ticket's category is one of them.
* **Custom statuses** ``{"key", "label", "buyer_label", "maps_to"}``: a shop's own names
  (e.g. 待仓库核实 mapped onto ``on_hold``); setting ``custom_status`` moves the ticket
  to ``maps_to`` through the status machine, and the buyer sees ``buyer_label``.
"""

from __future__ import annotations

import datetime
from typing import Any

from octim.errors import InvalidInput


def check_values(settings: dict[str, Any], values: dict[str, Any], *, creating: bool
                 ) -> None:
    """Refuse ``fields`` or a ``category`` the shop's settings do not allow."""
    categories = settings.get("categories") or []
    category = values.get("category")
    if categories and category is not None and category not in categories:
        raise InvalidInput(f"category is one of {', '.join(categories)}")
    definitions = {d["key"]: d for d in settings.get("fields") or []}
    if not definitions:
        return
    given = values.get("fields")
    if given is None:
        given = {}
        if not creating:
            return
    for key, value in given.items():
        definition = definitions.get(key)
        if definition is None:
            raise InvalidInput(f"no ticket field {key!r} in this shop")
        if value is not None:
            _check_type(definition, value)
    if creating:
        missing = [k for k, d in definitions.items() if d.get("required") and
                   given.get(k) is None]
        if missing:
            raise InvalidInput(f"required ticket field {missing[0]!r} is missing")


def _check_type(definition: dict[str, Any], value: Any) -> None:
    key, kind = definition["key"], definition["type"]
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"field {key!r} is a number")
    elif kind == "choice":
        if value not in (definition.get("choices") or []):
            raise InvalidInput(f"field {key!r} is one of {', '.join(definition['choices'])}")
    elif kind == "date":
        try:
            datetime.date.fromisoformat(str(value))
        except ValueError:
            raise InvalidInput(f"field {key!r} is a date (YYYY-MM-DD)") from None
        if not isinstance(value, str) or len(value) != 10:
            raise InvalidInput(f"field {key!r} is a date (YYYY-MM-DD)")
    elif not isinstance(value, str):
        raise InvalidInput(f"field {key!r} is text")


def custom_status(settings: dict[str, Any], key: str) -> dict[str, Any]:
    for status in settings.get("statuses") or []:
        if status["key"] == key:
            return dict(status)
    raise InvalidInput(f"no custom status {key!r} in this shop")


def buyer_labels(settings: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """custom status key → (what the buyer sees, the status it maps to)."""
    return {s["key"]: (s["buyer_label"], s["maps_to"]) for s in settings.get("statuses") or []}
