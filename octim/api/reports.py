"""Reports over HTTP (docs/reports.md).

``GET /api/reports/{name}?shop=&agent=&from=&to=&granularity=&tz=&format=json|csv``

* ``overview``: a shop's (``*``: the platform's) or one agent's totals and series by
  period; ``agents``: the shop's agents ranked (totals each).
* ``from``/``to``: days (``YYYY-MM-DD``, both included) in ``tz`` (default the shop's
  ``settings.timezone``, else Asia/Shanghai); default the last 7 days.
* ``format=csv``: UTF-8 with a byte-order mark, so Excel opens the Chinese right.

Shop admins read their shops, platform admins and the API key every shop and the
platform; an agent reads their own figures only. The counters are brought up to date
with the log before the answer (a report includes everything committed before it).
"""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
import csv
import datetime
import io
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from octim.auth import Principal
from octim.domain.conversations.model import Forbidden
from octim.domain.reports.read import agents as agent_rows
from octim.domain.reports.read import hot_questions, report
from octim.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from octim.api.auth import Auth
    from octim.engine import Engine

Day = Annotated[str, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")]
DEFAULT_TZ = "Asia/Shanghai"
MAX_DAYS = 400


def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}_"))
        else:
            out[prefix + key] = value
    return out


def as_csv(rows: list[dict[str, Any]]) -> bytes:
    flat = [flatten(r) for r in rows]
    columns = list(dict.fromkeys(k for r in flat for k in r))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(flat)
    return "\ufeff".encode() + text.getvalue().encode("utf-8")


def router(engine: "Engine", auth: "Auth") -> APIRouter:
    api = APIRouter(tags=["reports"])
    Caller = Annotated[Principal | None, Depends(auth.platform_or_person)]

    def zone_of(shop: str, tz: str) -> ZoneInfo:
        name = tz or ((engine.store.get("shops", shop.encode()) or {}).get("settings")
                      or {}).get("timezone") or DEFAULT_TZ
        try:
            return ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(f"unknown time zone {name!r}") from None

    def scope(who: Principal | None, shop: str, agent: str) -> str:
        """Who may read what: the agent whose figures are read ('' for the shop)."""
        if not shop:
            raise InvalidInput("give ?shop= (or * for the platform)")
        if shop != "*" and engine.store.get("shops", shop.encode()) is None:
            raise NotFound(f"no shop {shop!r}")
        if who is None or who.role == "platform_admin" or "*" in who.shops:
            return agent
        if shop == "*" or shop not in who.shops:
            raise NotFound(f"no shop {shop!r}")
        if who.role == "shop_admin":
            return agent
        if who.role == "agent":
            if agent and agent != who.user:
                raise Forbidden("agents read their own figures")
            return who.user
        raise Forbidden("reports are for staff")

    @api.get("/api/reports/{name}")
    async def read_report(name: Literal["overview", "agents", "hot-questions"], who: Caller,
                          shop: Annotated[str, Query(max_length=128)] = "",
                          agent: Annotated[str, Query(max_length=128)] = "",
                          from_: Annotated[str | None, Query(alias="from",
                                                             pattern=r"^\d{4}-\d{2}-\d{2}$")]
                          = None,
                          to: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")]
                          = None,
                          granularity: Literal["hour", "day", "week", "month"] = "day",
                          tz: Annotated[str, Query(max_length=64)] = "",
                          format: Literal["json", "csv"] = "json") -> Any:
        """A report: JSON, or CSV with a BOM."""
        agent = scope(who, shop, agent)
        if name in ("agents", "hot-questions") and who is not None and who.role == "agent":
            raise Forbidden(f"the {name} report is for shop admins")
        if name == "hot-questions" and shop == "*":
            raise InvalidInput("hot questions are one shop's")
        zone = zone_of(shop, tz)
        try:
            today = datetime.datetime.fromtimestamp(engine.context.clock(), tz=zone).date()
            last = datetime.date.fromisoformat(to) if to else today
            first = datetime.date.fromisoformat(from_) if from_ else last - \
                datetime.timedelta(days=6)
        except ValueError as exc:
            raise InvalidInput(f"not a day: {exc}") from None
        if first > last or (last - first).days > MAX_DAYS:
            raise InvalidInput(f"from is on or before to, at most {MAX_DAYS} days apart")
        start = datetime.datetime.combine(first, datetime.time(), zone)
        end = datetime.datetime.combine(last + datetime.timedelta(days=1), datetime.time(),
                                        zone)
        assert engine.reports is not None
        await engine.reports.catch_up()
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        if name == "hot-questions":
            hot = hot_questions(engine.store, shop, start_ms, end_ms, zone)
            if format == "csv":
                return Response(as_csv(hot["unanswered"]), media_type="text/csv; charset=utf-8",
                                headers={"Content-Disposition":
                                         f'attachment; filename="hot-{first}-{last}.csv"'})
            return {**hot, "from": str(first), "to": str(last)}
        if name == "agents":
            rows = agent_rows(engine.store, shop, start_ms, end_ms, zone)
            if format == "csv":
                return Response(as_csv(rows), media_type="text/csv; charset=utf-8",
                                headers={"Content-Disposition":
                                         f'attachment; filename="agents-{first}-{last}.csv"'})
            return {"shop": shop, "from": str(first), "to": str(last), "agents": rows}
        found = report(engine.store, shop, agent, start_ms, end_ms, granularity, zone)
        found.update({"from": str(first), "to": str(last)})
        if format == "csv":
            return Response(as_csv(found["series"]), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition":
                                     f'attachment; filename="overview-{first}-{last}.csv"'})
        return found

    return api
