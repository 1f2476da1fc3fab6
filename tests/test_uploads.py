"""Uploads over real HTTP: type checked by content, size limits, served only to
participants, and sent in conversations as image and voice messages."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import connect

SHOP = "s1"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)
OGG = b"OggS\x00\x02" + bytes(200)


def bearer(user: str, role: str = "buyer", *shops: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, role, *shops)}"}


async def test_upload_send_and_fetch_as_a_participant_only(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "d", max_image_bytes=4096) as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            (await http.put(f"/api/shops/{SHOP}", json={"name": SHOP, "bot": {"mode": "off"}},
                            headers={"Authorization": f"Bearer {TEST_API_KEY}"})
             ).raise_for_status()
            # The declared type is ignored; the bytes decide.
            created = await http.post("/api/uploads?kind=image", content=PNG, headers={
                **bearer("buyer-1"), "Content-Type": "text/plain"})
            assert created.status_code == 201, created.text
            upload = created.json()
            assert upload["mime"] == "image/png" and upload["size"] == len(PNG)
            voice = (await http.post("/api/uploads?kind=voice", content=OGG,
                                     headers=bearer("buyer-1"))).json()
            assert voice["mime"] == "audio/ogg"

            lies = await http.post("/api/uploads?kind=image", content=b"<script>x</script>",
                                   headers={**bearer("buyer-1"), "Content-Type": "image/png"})
            assert lies.status_code == 422 and lies.json()["error"]["code"] == "invalid_body"
            wrong_kind = await http.post("/api/uploads?kind=voice", content=PNG,
                                         headers=bearer("buyer-1"))
            assert wrong_kind.status_code == 422
            too_big = await http.post("/api/uploads?kind=image", content=PNG + bytes(5000),
                                      headers=bearer("buyer-1"))
            assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "too_large"
            anonymous = await http.post("/api/uploads?kind=image", content=PNG)
            assert anonymous.status_code == 401

            with trio.fail_after(20):
                async with connect(listening.ws_url, token("buyer-1")) as buyer, \
                        connect(listening.ws_url, token("buyer-2")) as stranger:
                    conv = (await buyer.open(SHOP))["conversation"]
                    await buyer.request({"type": "send", "conversation": conv, "id": "img",
                                         "kind": "image", "body": {"upload": upload["id"]}},
                                        "ack", id="img")
                    await buyer.request({"type": "send", "conversation": conv, "id": "v",
                                         "kind": "voice", "body": {"upload": voice["id"],
                                                                   "duration": 3.5}},
                                        "ack", id="v")
                    image, clip = await buyer.sync(conv)
                    assert image["body"]["url"] == f"/api/uploads/{upload['id']}"
                    assert clip["body"]["duration"] == 3.5 and clip["kind"] == "voice"
                    # Someone else's upload cannot be sent, nor an image as a voice clip.
                    other = (await http.post("/api/uploads?kind=image", content=PNG,
                                             headers=bearer("buyer-2"))).json()
                    await buyer.send({"type": "send", "conversation": conv, "id": "steal",
                                      "kind": "image", "body": {"upload": other["id"]}})
                    assert (await buyer.expect("error", ref="steal"))["code"] == "not_found"
                    await buyer.send({"type": "send", "conversation": conv, "id": "mix",
                                      "kind": "voice", "body": {"upload": upload["id"]}})
                    assert (await buyer.expect("error", ref="mix"))["code"] == "invalid_body"
                    assert stranger.user == "buyer-2"

            url = f"/api/uploads/{upload['id']}"
            staff = await http.get(url, headers=bearer("agent-1", "agent", SHOP))
            assert staff.status_code == 200 and staff.content == PNG
            assert staff.headers["content-type"] == "image/png"
            assert staff.headers["x-content-type-options"] == "nosniff"
            for outsider in (bearer("buyer-2"), bearer("agent-9", "agent", "s9")):
                denied = await http.get(url, headers=outsider)
                assert denied.status_code == 404


async def test_one_upload_sent_in_many_conversations_at_once_reaches_each(
        tmp_path: Path) -> None:
    """Each conversation records its own right to read an upload (an index row), so
    conversations that attach it in the same instant cannot overwrite one another."""
    shops = [f"s{i}" for i in range(6)]
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            for shop in shops:
                (await http.put(f"/api/shops/{shop}", json={"name": shop, "bot": {"mode": "off"}},
                                headers={"Authorization": f"Bearer {TEST_API_KEY}"})
                 ).raise_for_status()
            upload = (await http.post("/api/uploads?kind=image", content=PNG,
                                      headers=bearer("buyer-1"))).json()
            with trio.fail_after(20):
                async with connect(listening.ws_url, token("buyer-1")) as buyer:
                    conversations = [(await buyer.open(shop))["conversation"] for shop in shops]
                    for n, conv in enumerate(conversations):  # all in flight together
                        await buyer.send({"type": "send", "conversation": conv, "id": f"i{n}",
                                          "kind": "image", "body": {"upload": upload["id"]}})
                    for n in range(len(shops)):
                        await buyer.expect("ack", id=f"i{n}")
            for shop in shops:
                seen = await http.get(f"/api/uploads/{upload['id']}",
                                      headers=bearer(f"agent-{shop}", "agent", shop))
                assert seen.status_code == 200 and seen.content == PNG, shop
