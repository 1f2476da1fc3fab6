"""The HTTP API over a real socket: health, readiness, OpenAPI, shops, errors."""

from __future__ import annotations

import httpx

from octim import Engine, Listening


async def test_health_and_readiness(api: httpx.AsyncClient) -> None:
    health = await api.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    ready = await api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_not_ready_once_stopping(engine: tuple[Engine, Listening],
                                       api: httpx.AsyncClient) -> None:
    eng, _ = engine
    eng.ready = False  # what stop() does first, observed without tearing down the socket
    response = await api.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"


async def test_openapi_document(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    assert doc["info"]["title"] == "OctIM"
    assert {"/healthz", "/readyz", "/api/shops/{shop}"} <= set(doc["paths"])


async def test_shop_upsert_is_idempotent_and_durable(engine: tuple[Engine, Listening],
                                                    api: httpx.AsyncClient) -> None:
    body = {"name": "优衣坊旗舰店", "settings": {"categories": ["服装"]}}
    first = await api.put("/api/shops/uniqlo", json=body)
    assert first.status_code == 200, first.text
    again = await api.put("/api/shops/uniqlo", json=body)
    assert again.json()["created_at"] == first.json()["created_at"]
    got = await api.get("/api/shops/uniqlo")
    assert got.json()["name"] == "优衣坊旗舰店"
    assert got.json()["settings"] == {"categories": ["服装"]}
    eng, _ = engine
    # Committed before the answer came back:
    assert eng.store.get("shops", b"uniqlo")["name"] == "优衣坊旗舰店"
    assert (await api.delete("/api/shops/uniqlo")).status_code == 204
    assert (await api.delete("/api/shops/uniqlo")).status_code == 204
    missing = await api.get("/api/shops/uniqlo")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def test_api_key_is_required(engine: tuple[Engine, Listening]) -> None:
    _, listening = engine
    async with httpx.AsyncClient(base_url=listening.http_url) as anonymous:
        none = await anonymous.get("/api/shops/x")
        wrong = await anonymous.get("/api/shops/x", headers={"Authorization": "Bearer nope"})
    for response in (none, wrong):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


async def test_bad_input_gets_stable_codes(api: httpx.AsyncClient) -> None:
    cases = [
        await api.put("/api/shops/ok", json={"name": ""}),
        await api.put("/api/shops/ok", json={"name": "x", "surprise": 1}),
        await api.put("/api/shops/ok", content=b"{not json", headers={"content-type":
                                                                       "application/json"}),
        await api.put("/api/shops/bad%20id", json={"name": "x"}),
    ]
    for response in cases:
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_body"
    unknown = await api.get("/nowhere")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
