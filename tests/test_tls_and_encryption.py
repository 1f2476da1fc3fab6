"""TLS on both listeners (through a throwaway CA) and encryption at rest."""

from __future__ import annotations

import base64
import os
import ssl
from pathlib import Path

import httpx
import pytest
import trio
import trustme
from trio_websocket import open_websocket_url

from octim.store.crypto import new_key_line, parse_keys
from octim.store.rekey import rekey
from octim.testing import TEST_API_KEY, open_engine, token
from octim.testing.client import Client

SHOP = "s1"
SECRET_TEXT = "绝密-PLAINTEXT-7f3a9c-买家住址"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"
       b"\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\nIDATx\x9cc\x00\x01\x00\x00\x05\x00"
       b"\x01\r\n-\xb4\x00\x00\x00\x00IEND\xaeB`\x82")


async def test_https_and_wss_with_a_throwaway_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with open_engine(tmp_path / "d", tls_cert=str(cert_file), tls_key=str(key_file)) as (
            _, listening):
        assert listening.http_url.startswith("https://")
        assert listening.ws_url.startswith("wss://")
        async with httpx.AsyncClient(base_url=listening.http_url, verify=client_ctx) as http:
            assert (await http.get("/healthz")).json()["status"] == "ok"
            config = (await http.get("/api/client-config")).json()
            assert config["ws_url"].startswith("wss://")
        with trio.fail_after(10):
            async with open_websocket_url(listening.ws_url, ssl_context=client_ctx,
                                          subprotocols=["octim.v1.json"]) as ws:
                client = Client(ws, "octim.v1.json")
                await client.request({"type": "hello", "token": token("tls-buyer")}, "welcome")
                await client.request({"type": "ping"}, "pong")
        # A client that does not trust the CA is refused by TLS itself.
        async with httpx.AsyncClient(base_url=listening.http_url) as untrusting:
            with pytest.raises(httpx.ConnectError):
                await untrusting.get("/healthz")
        # Nor does plain HTTP reach it.
        async with httpx.AsyncClient(base_url=listening.http_url.replace("https", "http")
                                     ) as plain:
            with pytest.raises(httpx.HTTPError):
                (await plain.get("/healthz")).raise_for_status()


def files_contain(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def store_secrets(data: Path, **settings: str) -> None:
    """A message, a profile, a note, tags and an upload holding distinctive text."""
    async with open_engine(data, **settings) as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, headers={
                "Authorization": f"Bearer {TEST_API_KEY}"}) as http:
            (await http.put(f"/api/shops/{SHOP}", json={"name": SHOP})).raise_for_status()
            (await http.put("/api/customers/buyer-e", json={
                "nickname": SECRET_TEXT, "attributes": {"address": SECRET_TEXT}})
             ).raise_for_status()
            (await http.put(f"/api/shops/{SHOP}/customers/buyer-e/tags",
                            json={"tags": [SECRET_TEXT[:20]]})).raise_for_status()
        async with httpx.AsyncClient(base_url=listening.http_url, headers={
                "Authorization": f"Bearer {token('a', 'agent', SHOP)}"}) as staff:
            (await staff.post(f"/api/shops/{SHOP}/customers/buyer-e/notes",
                              json={"text": SECRET_TEXT})).raise_for_status()
        async with httpx.AsyncClient(base_url=listening.http_url, headers={
                "Authorization": f"Bearer {token('buyer-e')}"}) as buyer_http:
            upload = (await buyer_http.post("/api/uploads?kind=image",
                                            content=PNG + SECRET_TEXT.encode())).json()
        with trio.fail_after(10):
            async with open_websocket_url(listening.ws_url,
                                          subprotocols=["octim.v1.json"]) as ws:
                buyer = Client(ws, "octim.v1.json")
                await buyer.request({"type": "hello", "token": token("buyer-e")}, "welcome")
                conv = (await buyer.open(SHOP))["conversation"]
                await buyer.say(conv, "m1", SECRET_TEXT)
                await buyer.request({"type": "send", "conversation": conv, "id": "m2",
                                     "kind": "image", "body": {"upload": upload["id"]}},
                                    "ack", id="m2")
                synced = await buyer.sync(conv)
                assert synced[0]["body"]["text"] == SECRET_TEXT


async def test_encryption_at_rest_hides_plaintext_and_rekey_rotates(tmp_path: Path) -> None:
    needle = SECRET_TEXT.encode()
    clear, sealed = tmp_path / "clear", tmp_path / "sealed"
    await store_secrets(clear)
    assert files_contain(clear, needle)  # the check can see plaintext where it is
    first = new_key_line("k1")
    await store_secrets(sealed, data_key=first)
    assert files_contain(sealed, needle) == []
    assert files_contain(sealed / "blobs", PNG[:8]) == []  # uploads are sealed too
    # Read back through the engine with the key: everything is there.
    async with open_engine(sealed, data_key=first) as (engine, _):
        profile = engine.store.get("customers", b"buyer-e")
        assert profile is not None and profile["nickname"] == SECRET_TEXT
    # Without the key the engine refuses to start rather than serve garbage.
    try:
        async with open_engine(sealed):
            raise AssertionError("started without the data key")
    except Exception as exc:  # the engine's start-up error
        assert "data key" in str(exc) or any("data key" in str(e) for e in getattr(
            exc, "exceptions", ()))
    # Rotate: a new current key; rekey re-seals everything; the old key can go.
    second = new_key_line("k2")
    report = rekey(sealed, parse_keys(f"{second},{first}"))
    assert report.kid == "k2" and report.values["messages"] >= 2 and report.blobs == 1
    again = rekey(sealed, parse_keys(f"{second},{first}"))
    assert sum(again.values.values()) == 0 and again.blobs == 0  # resumable: nothing left
    async with open_engine(sealed, data_key=second) as (engine, listening):
        assert engine.store.get("customers", b"buyer-e")["nickname"] == SECRET_TEXT
        async with httpx.AsyncClient(base_url=listening.http_url, headers={
                "Authorization": f"Bearer {token('buyer-e')}"}) as buyer_http:
            meta = next(v for _, v in engine.store.scan("uploads"))
            got = await buyer_http.get(f"/api/uploads/{meta['id']}")
            assert got.content.startswith(PNG) and needle in got.content
    assert files_contain(sealed, needle) == []


def test_nonces_never_repeat_across_opens(tmp_path: Path) -> None:
    from octim.store.env import Environment

    keys = parse_keys("k:" + base64.b64encode(os.urandom(32)).decode())
    nonces = set()
    for _ in range(3):
        env = Environment(tmp_path / "n")
        sealer = env.open_sealer(keys)
        env.close()
        assert sealer is not None
        for _ in range(100):
            raw = sealer.seal(b"x", b"aad")
            nonces.add(raw[2 + 1:2 + 1 + 12])
    assert len(nonces) == 300


async def test_rekey_in_short_transactions_covers_every_value(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from octim.store import Put, open_store, pack
    from octim.store import rekey as rekey_module

    async with open_store(tmp_path / "s") as store:
        await store.write([Put("messages", f"k{i:05d}".encode(), pack({"i": i}))
                           for i in range(2000)])
    monkeypatch.setattr(rekey_module, "SCAN_PER_TXN", 7)  # many short transactions
    keys = parse_keys(new_key_line("k1"))
    assert (await trio.to_thread.run_sync(lambda: rekey(tmp_path / "s", keys, batch=3))
            ).values["messages"] == 2000
    again = await trio.to_thread.run_sync(lambda: rekey(tmp_path / "s", keys, batch=3))
    assert sum(again.values.values()) == 0
    async with open_store(tmp_path / "s", keys=keys) as store:
        assert [v["i"] for _, v in store.scan("messages")] == list(range(2000))
