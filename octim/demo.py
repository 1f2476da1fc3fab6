"""``octim demo``: the engine with a seeded demo platform and ready-made credentials.

The demo generates its own secret and API key (unless ``OCTIM_SECRET`` /
``OCTIM_API_KEY`` are set), seeds its shops through the same actors the HTTP
API uses, and prints the URLs and tokens to try it with.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

from octim.auth import issue_token
from octim.config import Settings, load_settings
from octim.domain.conversations import KIND as CONVERSATION
from octim.domain.conversations import SendMessage
from octim.domain.customers import KIND as CUSTOMER
from octim.domain.customers import AddLogistics
from octim.domain.kb.knowledge import ID as KB_ID
from octim.domain.kb.knowledge import KIND as KB
from octim.domain.kb.knowledge import UpsertEntry
from octim.domain.routing.dispatcher import ID as DISPATCHER_ID
from octim.domain.routing.dispatcher import KIND as DISPATCHER
from octim.domain.routing.messages import ForceAssign, UpsertAgent, UpsertGroup
from octim.domain.shops import KIND as SHOP
from octim.domain.shops import OpenConversation, UpsertShop
from octim.engine import Engine, Listening

DEFAULT_DATA = Path("octim-demo-data")

DEMO_SHOPS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("uniqlo-style", "优衣坊旗舰店", {"categories": ["服装", "鞋靴"]}),
    ("digital-port", "数码港专营店", {"categories": ["手机", "电脑", "配件"]}),
    ("fresh-orchard", "鲜果园", {"categories": ["水果", "生鲜"]}),
)


DEMO_KB: tuple[dict[str, Any], ...] = tuple(
    {"id": f"demo-{n}", "question": q, "similar": s, "answer": a, "category": c, "shop": None}
    for n, (q, s, a, c) in enumerate((
        ("什么时候发货", ["下单后多久发货", "几天能发出"], "付款后48小时内发货，预售以页面时间为准。", "物流"),
        ("用什么快递", ["发什么快递", "默认快递是哪家"], "默认中通和圆通，顺丰需补运费差价。", "物流"),
        ("包邮吗", ["运费怎么算", "满多少包邮"], "全场满99元包邮，偏远地区除外。", "物流"),
        ("怎么查物流", ["快递单号在哪里", "物流信息在哪看"], "在“我的订单”点“查看物流”即可。", "物流"),
        ("支持七天无理由退货吗", ["不喜欢可以退吗", "能七天无理由吗"], "支持七天无理由退货，吊牌需完好。", "售后"),
        ("退款多久到账", ["钱什么时候退回来", "退款要几天"], "仓库签收后1-3个工作日原路退款。", "售后"),
        ("怎么选尺码", ["穿多大码合适", "尺码怎么选"], "请参考尺码表，或告诉我们身高体重帮您推荐。", "商品"),
        ("有优惠券吗", ["能便宜点吗", "有没有折扣"], "店铺首页可领满199减20优惠券。", "优惠"),
    ), start=1))
DEMO_GROUPS = (("pre_sales", "售前"), ("after_sales", "售后"), ("logistics", "物流"))
DEMO_AGENTS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("agent-1", "小美", ("uniqlo-style", "digital-port"), ("pre_sales", "after_sales")),
    ("agent-2", "小王", ("uniqlo-style",), ("pre_sales", "logistics")),
    ("agent-3", "小李", ("digital-port", "fresh-orchard"), ("pre_sales",)),
)


def demo_settings(config_file: Path | None, flags: dict[str, Any]) -> Settings:
    """Settings for the demo: generated credentials unless the environment sets them."""
    env = dict(os.environ)
    env.setdefault("OCTIM_SECRET", secrets.token_urlsafe(48))
    env.setdefault("OCTIM_API_KEY", "demo-" + secrets.token_urlsafe(24))
    env.setdefault("OCTIM_LOG_FORMAT", "text")
    flags = dict(flags)
    if flags.get("data") is None and "OCTIM_DATA" not in env:
        flags["data"] = DEFAULT_DATA
    return load_settings(config_file=config_file, env=env, flags=flags)


async def seed_demo(engine: Engine) -> str:
    """Create the demo shops and one conversation between buyer-1 and agent-1.

    Idempotent: re-running the demo updates the shops, finds the same open
    conversation, and the fixed client message ids store nothing twice.
    Returns the conversation id.
    """
    directory = engine.directory
    dispatcher = directory.ref(DISPATCHER, DISPATCHER_ID)
    for shop_id, name, settings in DEMO_SHOPS:
        await directory.ref(SHOP, shop_id).ask(UpsertShop(shop_id, name, settings))
        for group, label in DEMO_GROUPS:
            await dispatcher.ask(UpsertGroup(shop_id, group, label))
    for agent, name, shops, groups in DEMO_AGENTS:
        await dispatcher.ask(UpsertAgent(agent, name, shops, groups, 5, 1.0))
    shop = DEMO_SHOPS[0][0]
    opened = await directory.ref(SHOP, shop).ask(OpenConversation(
        shop, "buyer-1", 2, {"product": "sku-1001", "title": "轻薄羽绒服 男款", "price": 399}))
    conversation = opened["conversation"]
    ref = directory.ref(CONVERSATION, conversation)
    if opened["state"] in ("queued", "bot"):
        await dispatcher.ask(ForceAssign(conversation, "agent-1"))
    kb = directory.ref(KB, KB_ID)
    for entry in DEMO_KB:
        await kb.ask(UpsertEntry(entry))
    await engine.upsert_customer("buyer-1", nickname="小王", level=2, region="杭州",
                                 attributes={"sizes": {"top": "L"}, "style": "通勤"})
    day = 86_400_000
    for order, order_shop, status, name, price, age in (
            ("demo-o1", "uniqlo-style", "shipped", "轻薄羽绒服 男款", 399, 2),
            ("demo-o2", "uniqlo-style", "delivered", "纯棉T恤", 79, 20),
            ("demo-o3", "digital-port", "paid", "蓝牙耳机", 199, 1)):
        await engine.upsert_order(order, shop=order_shop, customer="buyer-1", status=status,
                                  items=[{"sku": f"sku-{order}", "name": name, "price": price}],
                                  times={"created": int(time.time() * 1000) - age * day})
    await directory.ref(CUSTOMER, "buyer-1").ask(AddLogistics("demo-o1", (
        {"time": int(time.time() * 1000) - day, "place": "杭州", "status": "已揽收"},
        {"time": int(time.time() * 1000) - 3_600_000, "place": "上海转运中心",
         "status": "运输中"})))
    for client_id, user, role, text in (
            ("demo-1", "buyer-1", "buyer", "你好，这件羽绒服有L码吗？"),
            ("demo-2", "agent-1", "agent", "亲，L码有货的，今天下单明天发货哦～")):
        ack = await ref.ask(SendMessage(conversation, user, role, (shop,), client_id, "text",
                                        {"text": text}, 0))
        await ack.wait()
    return str(conversation)


def demo_links(settings: Settings, listening: Listening, conversation: str) -> str:
    """The text the demo prints once it is ready."""
    buyer = issue_token(settings.secret, "buyer-1", "buyer", ttl=86400)
    agent = issue_token(settings.secret, "agent-1", "agent",
                        shops=(DEMO_SHOPS[0][0], DEMO_SHOPS[1][0]), ttl=86400)
    shop = DEMO_SHOPS[0][0]
    return "\n".join([
        "",
        "OctIM demo is running. Press Ctrl+C to stop.",
        f"  data dir     {settings.data.resolve()}",
        f"  HTTP API     {listening.http_url}   (OpenAPI: {listening.http_url}/docs)",
        f"  WebSocket    {listening.ws_url}   (subprotocol octim.v1.json or octim.v1.msgpack)",
        f"  API key      {settings.api_key}",
        f"  buyer token  {buyer}",
        f"  agent token  {agent}",
        "",
        f"  conversation  {conversation}   (buyer-1 with {shop}, assigned to agent-1)",
        "",
        "Try:",
        f"  curl {listening.http_url}/readyz",
        f"  curl -H 'Authorization: Bearer {settings.api_key}' "
        f"{listening.http_url}/api/shops/{shop}",
        f"  connect to {listening.ws_url}, send {{\"type\":\"hello\",\"token\":<buyer token>}},",
        f"  then {{\"type\":\"sync\",\"conversation\":\"{conversation}\"}} "
        "(protocol: docs/protocol.md)",
        "  as the buyer, open another shop (nobody is online there) and ask 几天能发货: the bot "
        "answers; say 转人工 to be handed to a person",
        "",
    ])
