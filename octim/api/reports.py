"""Reports over HTTP (docs/reports.md).

``GET /api/reports/{name}?shop=&agent=&group=&channel=&entry=&from=&to=&granularity=&tz=
&format=json|csv``

* ``overview``: a shop's (``*``: the platform's), one agent's, group's, channel's or entry
  page's totals and series by period; ``conversion``, ``queue`` and ``tickets``: the
  same with their figures only (tickets add the backlog at each period's end);
  ``agents``: the shop's agents ranked (totals each); ``breakdown?by=channel|entry|group``:
  the shop's totals by each value; ``hot-questions``; ``lifecycle``: buyers by stage now.
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
from octim.domain.reports import lifecycle
from octim.domain.reports.counting import DIMENSIONS
from octim.domain.reports.read import agents as agent_rows
from octim.domain.reports.read import breakdown, hot_questions, report, view
from octim.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from octim.api.auth import Auth
    from octim.engine import Engine

Day = Annotated[str, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")]
Value = Annotated[str, Query(max_length=128, pattern=r"^[A-Za-z0-9._:-]*$")]
NAMES = Literal["overview", "conversion", "queue", "tickets", "agents", "breakdown",
                "hot-questions", "lifecycle"]
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

    def csv_response(rows: list[dict[str, Any]], name: str) -> Response:
        return Response(as_csv(rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})

    @api.get("/api/reports/{name}")
    async def read_report(name: NAMES, who: Caller,
                          shop: Annotated[str, Query(max_length=128)] = "",
                          agent: Annotated[str, Query(max_length=128)] = "",
                          group: Value = "", channel: Value = "", entry: Value = "",
                          by: Literal["channel", "entry", "group", ""] = "",
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
        if name in ("agents", "hot-questions", "breakdown", "lifecycle") and \
                who is not None and who.role == "agent":
            raise Forbidden(f"the {name} report is for shop admins")
        if name in ("hot-questions", "breakdown") and shop == "*":
            raise InvalidInput(f"the {name} report is one shop's")
        if name == "breakdown" and not by:
            raise InvalidInput("give ?by=channel, entry or group")
        chosen = {k: v for k, v in (("group", group), ("channel", channel), ("entry", entry))
                  if v}
        if chosen and (agent or len(chosen) > 1 or shop == "*"):
            raise InvalidInput("one of agent, group, channel or entry at a time, in a shop")
        if chosen and who is not None and who.role == "agent":
            raise Forbidden("agents read their own figures")
        for dimension, value in chosen.items():
            agent = DIMENSIONS[dimension] + value
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
        span = f"{first}-{last}"
        if name == "lifecycle":  # now: the stages are today's (from and to do not apply)
            found = lifecycle.report(engine.store, shop, engine.context.now_ms())
            if format == "csv":
                return csv_response(found["stages"], f"lifecycle-{last}")
            return found
        if name == "hot-questions":
            hot = hot_questions(engine.store, shop, start_ms, end_ms, zone)
            if format == "csv":
                return csv_response(hot["unanswered"], f"hot-{span}")
            return {**hot, "from": str(first), "to": str(last)}
        if name == "agents":
            rows = agent_rows(engine.store, shop, start_ms, end_ms, zone)
            if format == "csv":
                return csv_response(rows, f"agents-{span}")
            return {"shop": shop, "from": str(first), "to": str(last), "agents": rows}
        if name == "breakdown":
            rows = breakdown(engine.store, shop, DIMENSIONS[by], start_ms, end_ms, zone)
            if format == "csv":
                return csv_response(rows, f"{by}-{span}")
            return {"shop": shop, "by": by, "from": str(first), "to": str(last), "rows": rows}
        found = view(report(engine.store, shop, agent, start_ms, end_ms, granularity, zone),
                     name)
        found.update({"from": str(first), "to": str(last)})
        if chosen:
            found["agent"] = None
            found.update(chosen)
        if format == "csv":
            return csv_response(found["series"], f"{name}-{span}")
        return found

    return api
