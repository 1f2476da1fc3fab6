"""Campaigns (营销活动): one message to a segment of buyers, at a time or recurring, at a
send rate, through the gate for every recipient (docs/outreach.md).

A campaign belongs to one shop: its messages come from that shop, into each buyer's
conversation with it (as a ``notice`` of type ``campaign``). Its audience is a segment of
that shop, or one the platform shared (``shared: true``, no shop); never another shop's.

**A run** (one per schedule time) goes through two phases, both resumable:

1. *audience*: the segment's members are written as ``pending`` recipients
   (``campaign_recipients``: campaign ``\\0`` run ``\\0`` buyer), up to a hundred per
   commit, with the scan's cursor in the same commit;
2. *sending*: recipients in key order at the campaign's rate, a few under way at once
   (``campaign_in_flight``). For each, the
   buyer's actor reserves the send (the gate, the caps counted in that commit, once per
   run however often it is asked) and the conversation commits the message with the
   recipient's idempotency record (``notices_sent``: ``campaign`` ``\\0`` id ``\\0`` run
   ``\\0`` buyer). Recipients' states, the counters and the cursor are written together
   every 50 to 100 recipients or every second; the durable cursor only moves past
   recipients whose outcome is known.

After a crash or restart the runner picks the run up from its cursor: a recipient whose
message is committed is found by its idempotency record and never sent again; one whose
reservation is committed is not counted again. So every recipient gets the message at
most once, and every recipient is handled.

**Priority.** One task runs every campaign: sends are paced by trio's clock at each
campaign's rate and within the engine's ``campaign_max_rate``, at most
``campaign_in_flight`` per campaign under way, and finding an audience idles three times
as long as it works (at most a quarter of a core).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from octim.domain.conversations.model import ConversationMeta, message_key, pair_key
from octim.domain.conversations.rules import unsubscribes
from octim.domain.customers import KIND as CUSTOMER
from octim.domain.customers import Reserve
from octim.domain.outreach import gate
from octim.domain.outreach.notices import deliver, log_key, suppressed_op
from octim.domain.reports import lifecycle
from octim.domain.segments import facts, matches
from octim.errors import ClientError, InvalidInput, NotFound, OctimError
from octim.store import Op, Put, pack

if TYPE_CHECKING:
    from octim.engine import Engine

log = logging.getLogger("octim.campaigns")

SCHEDULED, RUNNING, PAUSED, FINISHED, CANCELLED = (
    "scheduled", "running", "paused", "finished", "cancelled")
LIVE = (SCHEDULED, RUNNING, PAUSED)
AUDIENCE_CHUNK = 25  # candidates looked at per audience step (about a millisecond)
AUDIENCE_SAVE = 500  # members found before the audience's progress is written
AUDIENCE_IDLE = 3.0  # after a step, idle this many times as long as it took: ≤ 25% of a core
FLUSH_EVERY = 50  # about how many recipients' states are written together (or each second)
QUEUE_CHUNK = 200  # recipients read ahead
RESULTS_TTL = 5.0  # seconds a computed result is served again
MAX_RUNS_KEPT = 30
HOUR_MS = 3_600_000


class CampaignEnded(ClientError):
    """The campaign finished or was cancelled: it cannot be paused, resumed or cancelled."""

    code = "campaign_ended"
    status = 409


def recipient_key(campaign: str, run: int, buyer: str) -> bytes:
    return f"{campaign}\0{run:06d}\0{buyer}".encode()


def sent_key(campaign: str, run: int, buyer: str) -> bytes:
    """The recipient's idempotency record in ``notices_sent`` (written with the message)."""
    return f"campaign\0{campaign}\0{run}\0{buyer}".encode()


def click_token(secret: str, campaign: str, run: int, buyer: str) -> str:
    """The redirect token of one recipient's link: who clicked, unforgeable."""
    payload = f"{campaign}.{run}.{buyer}"
    mac = hmac.new(secret.encode(), b"click\0" + payload.encode(), hashlib.sha256)
    return f"{payload}.{mac.hexdigest()[:24]}"


def read_click(secret: str, token: str) -> tuple[str, int, str] | None:
    parts = token.rsplit(".", 1)
    if len(parts) != 2:
        return None
    fields = parts[0].split(".", 2)
    if len(fields) != 3 or not fields[1].isdigit():
        return None
    campaign, run, buyer = fields[0], int(fields[1]), fields[2]
    if not hmac.compare_digest(click_token(secret, campaign, run, buyer), token):
        return None
    return campaign, run, buyer


def check_audience(store: Any, shop: str, segment_id: str) -> dict[str, Any]:
    """The segment a campaign of ``shop`` may target: the shop's own, or one the platform
    shared; any other answers ``not_found`` (no probing of other shops' segments)."""
    segment = store.get("segments", segment_id.encode())
    if segment is None or not (segment.get("shop") == shop or
                               (not segment.get("shop") and segment.get("shared"))):
        raise NotFound(f"no segment {segment_id!r} for shop {shop!r}")
    return dict(segment)


def _candidates(store: Any, segment: dict[str, Any], cursor: str, limit: int
                ) -> tuple[list[str], str]:
    """Up to ``limit`` buyers after ``cursor`` who might be members: every customer, then
    (for a shop segment) the shop's paying buyers OctIM has no profile of. The cursor is
    ``c:<customer>`` or ``r:<buyer>``; ``""`` starts, ``"end"`` is past the last."""
    if cursor == "end":
        return [], "end"
    phase, _, after = cursor.partition(":") if cursor else ("c", "", "")
    if phase == "c":
        rows = store.scan("customers", after.encode() + b"\0" if after else b"",
                          limit=limit)
        found = [key.decode() for key, _ in rows]
        if len(rows) == limit:
            return found, f"c:{found[-1]}"
        if not segment.get("shop"):
            return found, "end"
        phase, after = "r", ""
        if found:
            return found, "r:"
    prefix = lifecycle.rfm_key(segment["shop"], "").encode()
    lo = prefix + after.encode() + b"\0" if after else prefix
    rows = store.scan("report_pending", lo, prefix[:-1] + b"\x01", limit=limit)
    found = [key[len(prefix):].decode() for key, _ in rows]
    found = [b for b in found if store.get("customers", b.encode()) is None]
    if len(rows) == limit:
        return found, f"r:{rows[-1][0][len(prefix):].decode()}"
    return found, "end"


async def preview(engine: Engine, shop: str, segment: dict[str, Any], limit: int
                  ) -> dict[str, Any]:
    """How many buyers the segment holds now, and what the gate would say to each if the
    campaign went out now (counted, nothing reserved or sent)."""
    store, now = engine.store, engine.context.now_ms()
    members, cursor = 0, ""
    reasons: dict[str, int] = {}
    shop_record = store.get("shops", shop.encode()) or {}
    settings = shop_record.get("settings") or {}
    limits = gate.GateSettings.from_record(settings.get("outreach"))
    while cursor != "end" and members < limit:
        found, cursor = _candidates(store, segment, cursor, AUDIENCE_CHUNK)
        for buyer in found:
            if not matches(segment["rule"], facts(store, buyer, segment.get("shop"),
                                                  now if segment["rule"].get("stages_any")
                                                  else None)):
                continue
            members += 1
            customer = store.get("customers", buyer.encode())
            decision = gate.decide(
                category="marketing", kind="campaign", shop=shop, customer=customer,
                now_ms=now, zone=gate.buyer_zone(customer, settings.get("timezone") or
                                                 gate.DEFAULT_ZONE),
                settings=limits, counts=_counts(store, buyer, shop, now, customer, settings),
                open_issue=_open_issue(store, buyer, shop))
            reasons[decision.reason] = reasons.get(decision.reason, 0) + 1
            if members >= limit:
                break
        await trio.sleep(0)  # a big segment is counted between other work
    return {"segment": segment["id"], "audience": members, "complete": cursor == "end",
            "reachable_now": reasons.pop("ok", 0), "suppressed_now": reasons}


def _counts(store: Any, buyer: str, shop: str, now: int, customer: Any,
            settings: dict[str, Any]) -> gate.Counts:
    zone = gate.buyer_zone(customer, settings.get("timezone") or gate.DEFAULT_ZONE)
    day, week = gate.day_keys(now, zone)
    return gate.Counts(*(int(store.get("outreach_counts", k.encode()) or 0) for k in (
        f"{buyer}\0{shop}\0{day}", f"{buyer}\0{shop}\0{week}", f"{buyer}\0*\0{day}")))


def _open_issue(store: Any, buyer: str, shop: str) -> bool:
    from octim.domain.tickets.model import NEW, ON_HOLD, OPEN, PENDING

    prefix = pair_key(buyer, "")
    return any(owner == shop and (store.get("tickets", key[len(prefix):]) or {}).get(
        "status") in (NEW, OPEN, PENDING, ON_HOLD)
        for key, owner in store.scan("idx_requester_tickets", prefix, prefix[:-1] + b"\x01"))


def new_progress(started: int) -> dict[str, Any]:
    return {"phase": "audience", "cursor": "", "send_cursor": "", "targeted": 0, "sent": 0,
            "suppressed": {}, "started": started, "finished": None}


class Campaigns:
    """The engine's campaigns: the records (the only writer of them), and the one task
    that runs them (:meth:`run`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.live: dict[str, dict[str, Any]] = {}  # campaign id → its record, while live
        self._kick = trio.Event()
        self._due: dict[str, float] = {}  # campaign id → trio time of its next send
        self._next_any = 0.0  # trio time before which no campaign sends (the engine cap)
        self._lock = trio.Lock()
        self._results: dict[tuple[str, int], tuple[float, dict[str, int]]] = {}
        self._buffer: dict[str, list[Op]] = {}  # campaign id → ops its next save writes
        self._flushed: dict[str, float] = {}  # campaign id → trio time of its last save
        self._queue: dict[str, deque[tuple[bytes, Any]]] = {}  # recipients read ahead
        self._read: dict[str, str] = {}  # campaign id → the last recipient taken
        self._flying: dict[str, deque[list[Any]]] = {}  # taken, in order: [buyer, done]
        self._nursery: trio.Nursery  # the runner's, for the sends (while it runs)
        self.sent_total = 0

    def open(self) -> None:
        for _, record in self.engine.store.scan("campaigns"):
            if record["state"] in LIVE:
                self.live[record["id"]] = dict(record)
                if record["state"] == RUNNING:
                    progress = record["progress"]
                    log.info("campaign resumed", extra={
                        "campaign": record["id"], "run": record["run"],
                        "phase": progress["phase"], "sent": progress["sent"],
                        "targeted": progress["targeted"]})

    # -- records ------------------------------------------------------------------

    def get(self, campaign: str) -> dict[str, Any]:
        found = self.live.get(campaign) or self.engine.store.get(
            "campaigns", campaign.encode())
        if found is None:
            raise NotFound(f"no campaign {campaign!r}")
        return dict(found)

    def of_shop(self, shop: str | None) -> list[dict[str, Any]]:
        rows = [dict(self.live.get(r["id"], r)) for _, r in self.engine.store.scan("campaigns")]
        return sorted((r for r in rows if shop is None or r["shop"] == shop),
                      key=lambda r: -r["created"])

    async def create(self, values: dict[str, Any], by: str) -> dict[str, Any]:
        """A new campaign (values validated by the API; the audience already checked)."""
        now = self.engine.context.now_ms()
        schedule = values.get("schedule") or {}
        at = schedule.get("at")
        record = {**values, "id": f"cmp-{secrets.token_hex(6)}", "by": by, "created": now,
                  "state": SCHEDULED, "run": 0, "next_at": int(at) if at else now,
                  "progress": None, "runs": []}
        await self._save(record)
        self.live[record["id"]] = record
        self._kick.set()
        return dict(record)

    async def control(self, campaign: str, action: str) -> dict[str, Any]:
        """``pause``, ``resume`` or ``cancel``."""
        async with self._lock:
            record = self.live.get(campaign)
            if record is None:
                self.get(campaign)  # not_found, or:
                raise CampaignEnded(f"campaign {campaign!r} has ended; it cannot {action}")
            if action == "pause":
                if record["state"] != PAUSED:
                    record["paused_from"], record["state"] = record["state"], PAUSED
            elif action == "resume":
                if record["state"] == PAUSED:
                    record["state"] = record.pop("paused_from", SCHEDULED)
            elif action == "cancel":
                record["state"] = CANCELLED
                progress = record.get("progress")
                if progress and progress["phase"] != "done":  # a run under way ends here
                    progress["finished"] = self.engine.context.now_ms()
                    self._close_run(record)
                else:  # between runs (or before the first): nothing to close
                    self._finished(record)
            else:
                raise InvalidInput("action is pause, resume or cancel")
            await self._save(record)
            self._retire(record)
            self._kick.set()
            return dict(record)

    async def _save(self, record: dict[str, Any]) -> None:
        """Write the record with what its run did since the last save (the recipients'
        states and their counters and cursor are durable together)."""
        ops = self._buffer.pop(record["id"], [])
        self._flushed[record["id"]] = trio.current_time()
        await self.engine.store.write([*ops, Put("campaigns", record["id"].encode(),
                                                 pack(record))])

    # -- the runner -------------------------------------------------------------

    async def run(self) -> None:
        """Run every live campaign until cancelled (the engine's task)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            while True:
                try:
                    await self._round()
                except OctimError as exc:  # a store error: try again at the next tick
                    log.error("campaign round failed", exc_info=exc)
                    await trio.sleep(self.engine.settings.routing_tick)

    async def _round(self) -> None:
        now = self.engine.context.now_ms()
        for record in list(self.live.values()):
            if record["state"] == SCHEDULED and record["next_at"] <= now:
                async with self._lock:
                    if record["state"] == SCHEDULED:
                        record["state"], record["run"] = RUNNING, record["run"] + 1
                        record["progress"] = new_progress(now)
                        await self._save(record)
        running = [r for r in self.live.values() if r["state"] == RUNNING]
        if not running:
            waits = [max(0.0, (r["next_at"] - now) / 1000) for r in self.live.values()
                     if r["state"] == SCHEDULED]
            with trio.move_on_after(min([self.engine.settings.routing_tick, *waits])):
                await self._kick.wait()
            self._kick = trio.Event()
            return
        clock = trio.current_time()
        record = min(running, key=lambda r: self._due.get(r["id"], clock))
        progress = record["progress"]
        if progress["phase"] == "audience":
            began = time.perf_counter()
            await self._audience_step(record)
            # Background work: the audience of a big segment is found at a fraction of a
            # core, so that live chat keeps its latency while it is.
            await trio.sleep((time.perf_counter() - began) * AUDIENCE_IDLE)
            return
        cid = record["id"]
        if sum(1 for _, done in self._flying.get(cid, ()) if not done) >= \
                self.engine.settings.campaign_in_flight:
            await self._nap(1.0)  # until one of its sends lands
            return
        wait = max(self._due.get(cid, clock), self._next_any) - clock
        if wait > 0:
            await self._nap(wait)  # a pause or a cancel does not wait for the next send
            return
        if not await self._start_send(record):
            return  # nothing went out (a recipient handled before, or the run's end)
        rate = min(float(record["rate"]), float(self.engine.settings.campaign_max_rate))
        clock = trio.current_time()
        # At the rate from here on; a late runner does not make up for lost time in a burst.
        self._due[cid] = max(self._due.get(cid, clock) + 1 / rate, clock - 1 / rate)
        self._next_any = clock + 1 / float(self.engine.settings.campaign_max_rate)

    async def _nap(self, seconds: float) -> None:
        """Wait ``seconds``, or less if something changes (a send lands, a control)."""
        with trio.move_on_after(seconds):
            await self._kick.wait()
        self._kick = trio.Event()

    async def _audience_step(self, record: dict[str, Any]) -> None:
        store, now = self.engine.store, self.engine.context.now_ms()
        progress = record["progress"]
        segment = store.get("segments", record["segment"].encode())
        found, cursor = ([], "end") if segment is None else _candidates(
            store, segment, progress["cursor"], AUDIENCE_CHUNK)
        room = int(self.engine.settings.campaign_max_audience) - progress["targeted"]
        ops: list[Op] = []
        staged = segment is not None and bool(segment["rule"].get("stages_any"))
        for buyer in found:
            if len(ops) >= room:
                cursor = "end"
                break
            if segment is not None and matches(segment["rule"], facts(
                    store, buyer, segment.get("shop"), now if staged else None)):
                ops.append(Put("campaign_recipients",
                               recipient_key(record["id"], record["run"], buyer),
                               pack({"state": "pending"})))
        # No await since the scan: the chunk, the counter and the cursor move together, and
        # are written together (with the chunks before, every AUDIENCE_SAVE members or
        # every second: one commit per chunk would park the loop too often).
        progress["targeted"] += len(ops)
        progress["cursor"] = cursor
        if cursor == "end":
            progress["phase"] = "sending"
        buffer = self._buffer.setdefault(record["id"], [])
        buffer.extend(ops)
        if cursor == "end" or len(buffer) >= AUDIENCE_SAVE or \
                trio.current_time() - self._flushed.get(record["id"], 0.0) >= 1.0:
            await self._save(record)

    async def _start_send(self, record: dict[str, Any]) -> bool:
        """Start the next recipient's send (a few run at once, ``campaign_in_flight``);
        whether one started. Recipients are taken in key order; the durable cursor moves
        only past recipients whose outcome is known, so a restart redoes every send that
        was in flight."""
        store = self.engine.store
        progress = record["progress"]
        cid, run = record["id"], record["run"]
        lo = recipient_key(cid, run, "")
        queue = self._queue.setdefault(cid, deque())
        flying = self._flying.setdefault(cid, deque())
        if not queue:
            after = self._read.get(cid, progress["send_cursor"])
            start = recipient_key(cid, run, after) + b"\0" if after else lo
            queue.extend(store.scan("campaign_recipients", start, lo[:-1] + b"\x01",
                                    limit=QUEUE_CHUNK))
            if not queue:
                if flying:  # the last sends are still on their way
                    await self._nap(1.0)
                    return False
                async with self._lock:  # every recipient handled: the run is over
                    if record["progress"] is progress and record["state"] == RUNNING:
                        progress["finished"] = self.engine.context.now_ms()
                        self._close_run(record)
                        await self._save(record)
                        self._retire(record)
                return False
        key, state = queue.popleft()
        buyer = key[len(lo):].decode()
        self._read[cid] = buyer
        entry = [buyer, False]
        flying.append(entry)
        if state.get("state") != "pending":  # handled before a restart
            entry[1] = True
            self._advance(record)
            return False
        self._nursery.start_soon(self._send_task, record, progress, key, buyer, entry)
        return True

    async def _send_task(self, record: dict[str, Any], progress: dict[str, Any], key: bytes,
                         buyer: str, entry: list[Any]) -> None:
        cid = record["id"]
        try:
            outcome = await self._send_one(record, buyer)
        except Exception as exc:  # this recipient is not reached; the others go on
            log.error("campaign send failed", exc_info=exc,
                      extra={"campaign": cid, "buyer": buyer})
            outcome = {"state": "suppressed", "reason": "not_posted",
                       "at": self.engine.context.now_ms()}
        ops = self._buffer.setdefault(cid, [])
        ops.extend(outcome.pop("_log", []))
        ops.append(Put("campaign_recipients", key, pack(outcome)))
        if outcome["state"] == "sent":
            progress["sent"] += 1
            self.sent_total += 1
        else:
            reason = outcome["reason"]
            progress["suppressed"][reason] = progress["suppressed"].get(reason, 0) + 1
        entry[1] = True
        self._advance(record)
        self._kick.set()
        if record["state"] not in LIVE:  # cancelled while it flew: the figures include it
            runs = record["runs"]
            if runs and runs[-1]["run"] == record["run"]:
                runs[-1].update({k: progress[k] for k in ("sent", "suppressed")})
            await self._save(record)
        elif len(ops) >= 2 * FLUSH_EVERY or \
                trio.current_time() - self._flushed.get(cid, 0.0) >= 1.0:
            await self._save(record)

    def _advance(self, record: dict[str, Any]) -> None:
        """Move the durable cursor past the recipients handled, in key order."""
        flying = self._flying.get(record["id"])
        while flying and flying[0][1]:
            record["progress"]["send_cursor"] = flying.popleft()[0]

    def _retire(self, record: dict[str, Any]) -> None:
        if record["state"] not in LIVE:
            self.live.pop(record["id"], None)
        for table in (self._due, self._queue, self._flying, self._read):
            table.pop(record["id"], None)

    async def _send_one(self, record: dict[str, Any], buyer: str) -> dict[str, Any]:
        engine, store = self.engine, self.engine.store
        cid, run, shop = record["id"], record["run"], record["shop"]
        key = sent_key(cid, run, buyer)
        already = store.get("notices_sent", key)
        if already is not None:  # committed before a crash: never a second copy
            said = store.get("messages", message_key(already[0], already[1])) or {}
            return {"state": "sent", "conversation": already[0], "seq": already[1],
                    "at": int(said.get("ts") or engine.context.now_ms()), "online": False}
        reserved = await engine.directory.ref(CUSTOMER, buyer).ask(
            Reserve(shop, "campaign", f"{cid}:{run}", 0, once=True))
        now = engine.context.now_ms()
        entry = log_key(buyer, now)
        logged = {"shop": shop, "category": "marketing", "type": "campaign",
                  "ref": f"campaign:{cid}:{run}", "reason": reserved["reason"], "at": now}
        if not reserved["allowed"]:
            return {"state": "suppressed", "reason": reserved["reason"], "at": now,
                    "_log": [Put("outreach_log", entry, pack({**logged, "sent": False})),
                             suppressed_op(shop, "campaign", reserved["reason"], now)]}
        customer = store.get("customers", buyer.encode())
        body = self.body(record, buyer, customer)
        try:
            said = await deliver(engine, shop, buyer, customer, body, key, entry, logged,
                                 emit=False)
        except OctimError as exc:  # e.g. the shop went away: this recipient is not reached
            log.warning("campaign message not posted", extra={
                "campaign": cid, "buyer": buyer, "error": repr(exc)})
            return {"state": "suppressed", "reason": "not_posted", "at": now, "_log": []}
        return {"state": "sent", "conversation": said["conversation"], "seq": said["seq"],
                "at": now, "online": bool(engine.fanout.connections_of(buyer))}

    def body(self, record: dict[str, Any], buyer: str, customer: dict[str, Any] | None
             ) -> dict[str, Any]:
        """The message one recipient gets: the text in their language, the cards, and the
        link through the click redirect."""
        message = record["message"]
        language = "en" if str((customer or {}).get("language") or "").lower().startswith(
            "en") and message.get("text_en") else "zh-CN"
        text = message["text_en"] if language == "en" else message["text"]
        body: dict[str, Any] = {"notice": "campaign", "text": text,
                                "campaign": {"id": record["id"], "name": record["name"]}}
        for card in ("product", "coupon"):
            if message.get(card):
                body[card] = dict(message[card])
        if message.get("link"):
            token = click_token(self.engine.settings.secret, record["id"], record["run"], buyer)
            base = self.engine.settings.public_url.rstrip("/")
            body["link"] = {"url": f"{base}/c/{token}",
                            "title": message["link"].get("title") or message["link"]["url"]}
        return body

    def _close_run(self, record: dict[str, Any]) -> None:
        """The run is over (all handled, or cancelled): keep its figures, and schedule the
        next run of a recurring campaign."""
        progress = record["progress"]
        progress["phase"] = "done"
        record["runs"] = [*record["runs"], {"run": record["run"], **{
            k: progress[k] for k in ("targeted", "sent", "suppressed", "started", "finished")}}
            ][-MAX_RUNS_KEPT:]
        try:
            if record["state"] != CANCELLED:
                self._schedule_next(record)
        finally:
            self._finished(record)

    def _schedule_next(self, record: dict[str, Any]) -> None:
        every = (record.get("schedule") or {}).get("every_hours")
        until = (record.get("schedule") or {}).get("until")
        if every:
            step = int(every * HOUR_MS)
            now = self.engine.context.now_ms()
            missed = max(0, math.ceil((now - record["next_at"]) / step))
            next_at = record["next_at"] + max(1, missed) * step
            if until is None or next_at <= until:
                record["state"], record["next_at"] = SCHEDULED, next_at
                return
        record["state"] = FINISHED

    async def flush(self) -> None:
        """Write what the runner did since its last saves (a clean stop)."""
        async with self._lock:
            for campaign in list(self._buffer):
                record = self.live.get(campaign)
                if record is not None:
                    await self._save(record)

    def _finished(self, record: dict[str, Any]) -> None:
        """``campaign.finished``: a run is over (sent to all, or the campaign cancelled);
        ``state`` says whether another run is scheduled."""
        progress = record.get("progress") or {}
        self.engine.events.emit("campaign.finished", {
            "campaign": record["id"], "shop": record["shop"], "state": record["state"],
            "run": record["run"], "next_at": record["next_at"]
            if record["state"] == SCHEDULED else None, "targeted": progress.get("targeted", 0),
            "sent": progress.get("sent", 0), "suppressed": progress.get("suppressed", {})})

    # -- clicks and results ---------------------------------------------------------

    async def click(self, token: str) -> str | None:
        """Record a recipient's click (once) and answer where the link goes."""
        found = read_click(self.engine.settings.secret, token)
        if found is None:
            return None
        campaign, run, buyer = found
        record = self.engine.store.get("campaigns", campaign.encode())
        if record is None or not (record.get("message") or {}).get("link"):
            return None
        key = recipient_key(campaign, run, buyer) + b"\0clicked"
        if self.engine.store.get("campaign_events", key) is None:
            await self.engine.store.write((Put("campaign_events", key, pack(
                self.engine.context.now_ms())),))
        return str(record["message"]["link"]["url"])

    async def results(self, campaign: str, run: int | None = None) -> dict[str, Any]:
        """A run's results (the latest if ``run`` is None): targeted, suppressed with
        reasons and sent from the runner's counters; delivered, read, replied, clicked,
        ordered within the campaign's attribution hours and opted out, computed from the
        conversations, orders and buyers now (at most every few seconds)."""
        record = self.get(campaign)
        run = run or record["run"]
        if run < 1 or run > record["run"]:
            raise NotFound(f"campaign {campaign!r} has no run {run}")
        if run == record["run"] and record.get("progress"):
            progress = record["progress"]
        else:
            progress = next((r for r in record["runs"] if r["run"] == run), {})
        answer = {"campaign": campaign, "run": run, "state": record["state"],
                  "phase": progress.get("phase", "done"),
                  "targeted": progress.get("targeted", 0), "sent": progress.get("sent", 0),
                  "suppressed": progress.get("suppressed", {}),
                  "started": progress.get("started"), "finished": progress.get("finished")}
        return {**answer, **await self._figures(record, run)}

    async def _figures(self, record: dict[str, Any], run: int) -> dict[str, int]:
        """What the recipients did since, by a scan of the run's recipients (served again
        for ``RESULTS_TTL`` seconds)."""
        campaign = record["id"]
        cached = self._results.get((campaign, run))
        clock = trio.current_time()
        if cached is not None and clock - cached[0] < RESULTS_TTL:
            return cached[1]
        store = self.engine.store
        figures = {"delivered": 0, "read": 0, "replied": 0, "clicked": 0, "ordered": 0,
                   "opted_out": 0}
        window = int(float(record.get("attribution_hours") or 24) * HOUR_MS)
        lo = recipient_key(campaign, run, "")
        cursor = lo
        while True:
            rows = store.scan("campaign_recipients", cursor, lo[:-1] + b"\x01", limit=500)
            for key, state in rows:
                if state.get("state") != "sent":
                    continue
                buyer = key[len(lo):].decode()
                for name, hit in self._reached(record, buyer, key, state, window).items():
                    figures[name] += hit
            if len(rows) < 500:
                break
            cursor = rows[-1][0] + b"\0"
            await trio.sleep(0)
        self._results[(campaign, run)] = (clock, figures)
        return figures

    def _reached(self, record: dict[str, Any], buyer: str, key: bytes,
                 state: dict[str, Any], window: int) -> dict[str, int]:
        store, shop = self.engine.store, record["shop"]
        seq, at = int(state["seq"]), int(state["at"])
        meta = ConversationMeta.load(store, state["conversation"])
        read = meta is not None and meta.reads.get(buyer, 0) >= seq
        replied = meta is not None and meta.last_seq > seq and any(  # 退订 is no reply
            m["role"] == "buyer" and not unsubscribes(str(m["body"].get("text") or ""))
            for _, m in store.scan_scope("messages", meta.id, after=seq, limit=50))
        receipt = store.get("deliveries", pair_key(state["conversation"], str(seq)))
        channel_ok = isinstance(receipt, dict) and receipt.get("status") in (
            "delivered", "read")
        prefix = f"{buyer}\0{shop}\0".encode()
        ordered = False
        for order_key, _ in store.scan("idx_customer_orders", prefix, prefix[:-1] + b"\x01"):
            order = store.get("orders", order_key[len(prefix):]) or {}
            paid = (order.get("times") or {}).get("paid")
            if paid is not None and at <= int(paid) <= at + window:
                ordered = True
                break
        customer = store.get("customers", buyer.encode()) or {}
        times = customer.get("opt_out_times") or {}
        opted = any(int(times.get(name) or 0) >= at for name in (
            f"marketing:{shop}", "marketing", "campaign"))
        return {"delivered": int(bool(state.get("online")) or read or replied or channel_ok),
                "read": int(read), "replied": int(replied),
                "clicked": int(store.get("campaign_events", key + b"\0clicked") is not None),
                "ordered": int(ordered), "opted_out": int(opted)}

    async def recipients(self, campaign: str, run: int, state: str | None, after: str,
                         limit: int) -> list[dict[str, Any]]:
        """A run's recipients in buyer order: pending, sent (where) or suppressed (why)."""
        lo = recipient_key(campaign, run, "")
        start = recipient_key(campaign, run, after) + b"\0" if after else lo
        out: list[dict[str, Any]] = []
        cursor = start
        while len(out) < limit:
            rows = self.engine.store.scan("campaign_recipients", cursor, lo[:-1] + b"\x01",
                                          limit=500)
            for key, value in rows:
                if state is None or value.get("state") == state:
                    out.append({"customer": key[len(lo):].decode(), **value})
                    if len(out) >= limit:
                        break
            if len(rows) < 500:
                break
            cursor = rows[-1][0] + b"\0"
        return out
