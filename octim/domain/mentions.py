"""``@`` mentions in private notes (conversations) and internal notes (tickets)."""

from __future__ import annotations

import re
from typing import Any

MENTION = re.compile(r"@([\w.:-]{1,128})")


def mentioned(store: Any, shop: str, text: str) -> list[str]:
    """The ids of the shop's agents ``text`` names, by ``@id`` or ``@name`` (any case)."""
    named = {n.casefold() for n in MENTION.findall(text)}
    if not named:
        return []
    return sorted(a["id"] for _, a in store.scan("agents")
                  if (shop in a["shops"] or "*" in a["shops"])
                  and (a["id"].casefold() in named or str(a.get("name", "")).casefold() in named))
