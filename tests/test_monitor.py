"""The monitor counts the durable event log through a cursor: every logged event once,
however many arrive between two reads, and exactly once across a restart."""

from __future__ import annotations

from pathlib import Path

from octim.domain.conversations.actor import KIND as CONVERSATION
from octim.domain.conversations.messages import SendMessage
from octim.domain.monitor import CURSOR_KEY
from octim.testing import open_engine

SHOPS = ("s1", "s2")
BUYERS = 150  # per shop


async def counters(engine: object, shop: str) -> dict[str, object]:
    # A snapshot may be a second old (Reports.fresh): this one is to be exact.
    await engine.reports.catch_up()  # type: ignore[attr-defined]
    snapshot = await engine.monitor.snapshot([shop])  # type: ignore[attr-defined]
    return dict(snapshot["shops"][0]["today"])


async def test_every_logged_event_is_counted_once_across_a_restart(tmp_path: Path) -> None:
    # No timed tick: the monitor reads only when asked, after the whole burst.
    async with open_engine(tmp_path / "d", routing_tick=3600) as (engine, _):
        for shop in SHOPS:
            await engine.put_shop(shop, shop, bot={"mode": "off"})
        cursor = engine.monitor.cursor
        # A burst: hundreds of conversations and messages before the monitor reads.
        for shop in SHOPS:
            for n in range(BUYERS):
                buyer = f"b{n}"
                conversation = await engine.open_conversation(shop, buyer)
                for i in range(2):
                    ack = await engine.directory.ref(CONVERSATION, conversation).ask(
                        SendMessage(conversation, buyer, "buyer", (), f"m{i}", "text",
                                    {"text": f"问题{i}"}, ""))
                    await ack.wait()
        assert engine.monitor.cursor == cursor  # nothing read yet
        first = {shop: await counters(engine, shop) for shop in SHOPS}
        for shop in SHOPS:
            assert first[shop]["opened"] == BUYERS
            assert first[shop]["buyer_messages"] == 2 * BUYERS
        assert engine.store.get("meta", CURSOR_KEY) == engine.monitor.cursor
        last = engine.store.log_last("log")
        assert engine.monitor.cursor == last  # read up to the last commit
        await engine.tick()  # nothing new: nothing counted again
        assert {shop: await counters(engine, shop) for shop in SHOPS} == first
    async with open_engine(tmp_path / "d") as (engine, _):
        assert engine.monitor.cursor == last
        assert {shop: await counters(engine, shop) for shop in SHOPS} == first
