"""Phone calls in (来电弹屏) over real HTTP and WebSocket: the caller is found by phone
number (a keyed hash in the index, never the number) or buyer id; the pop-up with the
profile and open tickets reaches the answering agent, or the shop's connected agents;
a ticket opened from it has source ``phone``; bad input gets stable errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import connect

SHOP, OTHER = "s1", "s2"
KEY = {"Authorization": f"Bearer {TEST_API_KEY}"}


async def test_a_call_pops_up_the_caller_and_their_open_tickets(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d") as (engine, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            for shop in (SHOP, OTHER):
                (await http.put(f"/api/shops/{shop}", json={"name": shop}, headers=KEY)
                 ).raise_for_status()
            for agent, shops in (("a1", [SHOP]), ("a2", [SHOP]), ("x9", [OTHER])):
                (await http.put(f"/api/agents/{agent}", json={"name": agent, "shops": shops},
                                headers=KEY)).raise_for_status()
            (await http.put("/api/customers/b1", json={"nickname": "阿宝", "level": 2,
                                                       "phone": "+8613800001111"},
                            headers=KEY)).raise_for_status()
            open_one = (await http.post("/api/tickets", json={
                "shop": SHOP, "subject": "退款", "requester": "b1"}, headers=KEY)).json()
            elsewhere = (await http.post("/api/tickets", json={
                "shop": OTHER, "subject": "别家的", "requester": "b1"}, headers=KEY)).json()
            # The number is not in the store's keys; its keyed hash is.
            keys = [k for k, _ in engine.store.scan("idx_customer_phone")]
            assert len(keys) == 1 and b"13800001111" not in keys[0]

            with trio.fail_after(20):
                async with connect(listening.ws_url, token("a1", "agent", SHOP)) as a1, \
                        connect(listening.ws_url, token("a2", "agent", SHOP)) as a2, \
                        connect(listening.ws_url, token("x9", "agent", OTHER)) as x9:
                    rang = await http.post("/api/inbound/call", json={
                        "shop": SHOP, "call": "c-1", "phone": "+8613800001111",
                        "agent": "a1"}, headers=KEY)
                    assert rang.status_code == 200, rang.text
                    popup = await a1.expect("call")
                    assert popup["buyer"] == "b1" and popup["profile"]["nickname"] == "阿宝"
                    assert [t["id"] for t in popup["tickets"]] == [open_one["id"]]
                    assert elsewhere["id"] not in str(popup)
                    assert rang.json()["reached"] == ["a1"]
                    with pytest.raises(trio.TooSlowError):
                        await a2.expect("call", timeout=0.3)
                    # Nobody named: the shop's connected agents, never another shop's.
                    unknown = (await http.post("/api/inbound/call", json={
                        "shop": SHOP, "call": "c-2", "phone": "02188886666"},
                        headers=KEY)).json()
                    assert unknown["buyer"] is None and unknown["reached"] == ["a1", "a2"]
                    assert (await a2.expect("call"))["call"] == "c-2"
                    with pytest.raises(trio.TooSlowError):
                        await x9.expect("call", timeout=0.3)

            made = await http.post("/api/tickets", json={
                "shop": SHOP, "subject": "来电：+8613800001111", "requester": "b1",
                "source": {"kind": "phone"}}, headers={
                    "Authorization": f"Bearer {token('a1', 'agent', SHOP)}",
                    "Idempotency-Key": "call-c-1"})
            assert made.status_code == 201 and made.json()["source"]["kind"] == "phone"
            audit = [row for _, row in engine.store.scan("audit") if row.get("what") == "call"]
            assert audit and audit[0]["customer"] == "b1" and audit[0]["who"] == "a1"

            # A changed number moves the index: the old number finds nobody.
            (await http.put("/api/customers/b1", json={"phone": "13900002222"}, headers=KEY)
             ).raise_for_status()
            old = (await http.post("/api/inbound/call", json={
                "shop": SHOP, "call": "c-3", "phone": "+8613800001111"}, headers=KEY)).json()
            assert old["buyer"] is None

            for bad, status in (({"shop": SHOP, "call": "c"}, 422),
                                ({"shop": SHOP, "call": "c", "phone": "abc"}, 422),
                                ({"shop": SHOP, "call": "c", "buyer": "b1", "agent": "x9"}, 422),
                                ({"shop": "nope", "call": "c", "buyer": "b1"}, 404)):
                answer = await http.post("/api/inbound/call", json=bad, headers=KEY)
                assert answer.status_code == status, (bad, answer.text)
                assert answer.json()["error"]["code"] in ("invalid_body", "not_found")
            staff = {"Authorization": f"Bearer {token('a1', 'agent', SHOP)}"}
            assert (await http.post("/api/inbound/call", json={
                "shop": SHOP, "call": "c", "buyer": "b1"}, headers=staff)).status_code == 401
