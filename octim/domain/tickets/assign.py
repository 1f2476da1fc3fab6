"""A shop's ticket assignment rules: ordered, the first that matches a new ticket sets
its group (and, if the rule says, its assignee and priority), in the style of
conversation routing's targeting rules (docs/tickets.md).

Pure functions over plain data. A rule's conditions all hold (an empty list or zero
means any): ``priority``, ``category`` and ``source`` among those listed, the buyer's VIP
``min_level``, and one of ``keywords`` in the subject or description. A rule that names
a group the shop no longer has, or an agent no longer its staff, is skipped (the
ticket is not stranded), as routing does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from octim.domain.tickets.model import Ticket


def matches(conditions: dict[str, Any], ticket: Ticket, level: int) -> bool:
    def among(name: str, value: str | None) -> bool:
        listed = conditions.get(name) or []
        return not listed or value in listed

    keywords = conditions.get("keywords") or []
    text = f"{ticket.subject}\n{ticket.description}".casefold()
    return (among("priority", ticket.priority) and among("category", ticket.category)
            and among("source", ticket.source.kind)
            and level >= int(conditions.get("min_level") or 0)
            and (not keywords or any(k.casefold() in text for k in keywords)))


def choose(rules: Iterable[dict[str, Any]], ticket: Ticket, level: int, groups: set[str],
           staff: set[str]) -> tuple[str, dict[str, Any]] | None:
    """The first usable matching rule's name and the changes it makes, or None."""
    for rule in rules:
        if not matches(rule.get("conditions") or {}, ticket, level):
            continue
        group, assignee = rule.get("group"), rule.get("assignee")
        if (group and group not in groups) or (assignee and assignee not in staff):
            continue
        changes = {k: v for k, v in (("group", group), ("assignee", assignee),
                                     ("priority", rule.get("priority"))) if v}
        return str(rule["name"]), changes
    return None
