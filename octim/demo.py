"""``octim demo``: the engine with a seeded demo platform and ready-made credentials.

The demo generates its own secret and API key (unless ``OCTIM_SECRET`` /
``OCTIM_API_KEY`` are set), seeds its shops through the same actors the HTTP
API uses, and prints the URLs and tokens to try it with.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from octim.auth import issue_token
from octim.config import Settings, load_settings
from octim.domain import canned
from octim.domain.conversations.actor import KIND as CONVERSATION
from octim.domain.conversations.actor import SendMessage
from octim.domain.customers import KIND as CUSTOMER
from octim.domain.customers import AddLogistics
from octim.domain.kb.knowledge import ID as KB_ID
from octim.domain.kb.knowledge import KIND as KB
from octim.domain.kb.knowledge import Propose, PutSynonyms, UpsertEntry
from octim.domain.outreach import reminders
from octim.domain.reports import synthetic
from octim.domain.routing.dispatcher import ID as DISPATCHER_ID
from octim.domain.routing.dispatcher import KIND as DISPATCHER
from octim.domain.routing.messages import ForceAssign, UpsertAgent, UpsertGroup
from octim.domain.shops import KIND as SHOP
from octim.domain.shops import OpenConversation, UpsertShop
from octim.domain.tickets.desk import KIND as TICKETS
from octim.domain.tickets.desk import (
    CommentTicket,
    CreateTicket,
    InboundEmail,
    PutBusinessHours,
    PutPolicy,
    PutRules,
    PutSettings,
)
from octim.engine import Engine, Listening
from octim.store import Put, pack

DEFAULT_DATA = Path("octim-demo-data")
DEMO_HISTORY_KEY = b"demo_history"  # in ``meta``: the month of synthetic history is loaded

DEMO_SHOPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("uniqlo-style", "优衣坊旗舰店", ("服装",)),
    ("digital-port", "数码港专营店", ("手机", "电脑", "配件")),
    ("stride-shoes", "步履鞋城", ("鞋靴", "运动鞋")),
)


def _kb(prefix: str, shop: str | None, rows: tuple[tuple[str, list[str], str, str], ...]
        ) -> tuple[dict[str, Any], ...]:
    return tuple({"id": f"{prefix}-{n}", "question": q, "similar": s, "answer": a,
                  "category": c, "shop": shop} for n, (q, s, a, c) in enumerate(rows, start=1))


# Platform-wide answers, then each shop's own.
DEMO_KB: tuple[dict[str, Any], ...] = _kb("demo", None, (
    ("什么时候发货", ["下单后多久发货", "几天能发出"], "付款后48小时内发货，预售以页面时间为准。", "物流"),
    ("用什么快递", ["发什么快递", "默认快递是哪家"], "默认中通和圆通，顺丰需补运费差价。", "物流"),
    ("包邮吗", ["运费怎么算", "满多少包邮"], "全场满99元包邮，偏远地区除外。", "物流"),
    ("怎么查物流", ["快递单号在哪里", "物流信息在哪看"], "在“我的订单”点“查看物流”即可。", "物流"),
    ("支持七天无理由退货吗", ["不喜欢可以退吗", "能七天无理由吗"], "支持七天无理由退货，吊牌需完好。", "售后"),
    ("退款多久到账", ["钱什么时候退回来", "退款要几天"], "仓库签收后1-3个工作日原路退款。", "售后"),
    ("有优惠券吗", ["能便宜点吗", "有没有折扣"], "店铺首页可领满199减20优惠券。", "优惠"),
)) + _kb("uniqlo", "uniqlo-style", (
    ("怎么选尺码", ["穿多大码合适", "尺码怎么选"], "请参考详情页尺码表，或告诉我们身高体重帮您推荐。", "商品"),
    ("羽绒服怎么清洗", ["羽绒服能机洗吗", "羽绒服可以水洗吗"], "建议手洗或干洗，水温不超过30度，平铺晾干。", "商品"),
    ("衣服会缩水吗", ["洗了会不会缩", "纯棉缩水吗"], "纯棉款首次洗涤约有1-2%缩水，建议冷水洗。", "商品"),
)) + _kb("digital", "digital-port", (
    ("保修多久", ["质保多长时间", "坏了怎么保修"], "全店商品全国联保一年，耳机类半年。", "售后"),
    ("支持以旧换新吗", ["旧手机能抵钱吗", "可以回收旧机吗"], "支持，下单时选择“以旧换新”，上门估价。", "优惠"),
    ("是正品吗", ["是不是行货", "有发票吗"], "官方授权正品行货，可开电子发票。", "商品"),
)) + _kb("stride", "stride-shoes", (
    ("鞋子偏码吗", ["尺码准不准", "要不要拍大一码"], "本店鞋子标准码，脚背高建议拍大半码。", "商品"),
    ("可以换尺码吗", ["买小了能换吗", "尺码不合适怎么办"], "签收7天内可免费换码一次，鞋盒需完好。", "售后"),
    ("跑鞋适合跑马拉松吗", ["能跑全马吗", "适合长跑吗"], "竞速系列适合半马和全马，缓震系列适合日常训练。", "商品"),
)) + (
    # Internal (知识库权限): agent assist and staff asks see it, the bot and buyers never do.
    {"id": "uniqlo-internal-1", "question": "退货地址是哪里", "similar": ["退货寄到哪", "退回地址"],
     "answer": "【内部】退货寄杭州仓三号门，收件人售后组，勿向买家透露仓库电话。", "category": "售后",
     "shop": "uniqlo-style", "visibility": "internal"},
)
DEMO_GROUPS = (("pre_sales", "售前"), ("after_sales", "售后"), ("logistics", "物流"))
DEMO_AGENTS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("agent-1", "小美", ("uniqlo-style", "digital-port"), ("pre_sales", "after_sales")),
    ("agent-2", "小王", ("uniqlo-style",), ("pre_sales", "logistics")),
    ("agent-3", "小李", ("digital-port",), ("pre_sales", "after_sales")),
    ("agent-4", "小张", ("stride-shoes",), ("pre_sales", "logistics")),
    ("agent-5", "小陈", ("stride-shoes",), ("after_sales",)),
)
DEMO_CANNED: tuple[tuple[str, str, str, str], ...] = tuple(
    (shop, f"{shop}-{n}", title, text) for shop in (s[0] for s in DEMO_SHOPS)
    for n, (title, text) in enumerate((
        ("问候", "亲，您好，欢迎光临～请问有什么可以帮您？"),
        ("稍等", "亲，请稍等，正在为您查询～"),
        ("发货", "亲，付款后48小时内发货，发货后可在订单里查看物流。"),
        ("结束语", "感谢您的耐心，祝您生活愉快，有问题随时找我们～"),
    ), start=1))
DAY_MS = 86_400_000
# buyer id, nickname, level, region, orders: (order, shop, status, item, price, days ago)
DEMO_BUYERS: tuple[tuple[str, str, int, str, tuple[tuple[str, str, str, str, int, int], ...]],
                   ...] = (
    ("buyer-1", "小王", 2, "杭州", (
        ("demo-o1", "uniqlo-style", "shipped", "轻薄羽绒服 男款", 399, 2),
        ("demo-o2", "uniqlo-style", "delivered", "纯棉T恤", 79, 20),
        ("demo-o3", "digital-port", "paid", "蓝牙耳机", 199, 1))),
    ("buyer-2", "阿珍", 5, "上海", (
        ("demo-o4", "digital-port", "delivered", "快充充电器", 89, 9),
        ("demo-o5", "stride-shoes", "shipped", "缓震跑鞋 42码", 559, 3))),
    ("buyer-3", "老陈", 0, "成都", (
        ("demo-o6", "stride-shoes", "delivered", "帆布鞋 40码", 199, 12),
        ("demo-o7", "uniqlo-style", "paid", "摇粒绒外套", 249, 1))),
)


# The first shop's service desk: working hours, an SLA, its own ticket fields and
# statuses, and assignment rules (docs/tickets.md).
DEMO_HOURS = {"timezone": "Asia/Shanghai", "holidays": ["2027-01-01"],
              "weekly": {d: [["09:00", "21:00"]] for d in ("mon", "tue", "wed", "thu", "fri",
                                                           "sat", "sun")}}
DEMO_POLICY = {"name": "标准服务", "position": 0, "business_hours": True,
               "escalate_to": "urgent", "conditions": {},
               "targets": {"urgent": {"first_reply": 30, "resolution": 240},
                           "high": {"first_reply": 60, "next_reply": 120, "resolution": 480},
                           "normal": {"first_reply": 240, "resolution": 1440}}}
DEMO_TICKET_SETTINGS = {
    "fields": [{"key": "carrier", "label": "快递公司", "type": "choice",
                "choices": ["中通", "圆通", "顺丰"]},
               {"key": "waybill", "label": "运单号", "type": "text"},
               {"key": "refund", "label": "退款金额", "type": "number"}],
    "categories": ["物流问题", "售后", "投诉", "商品咨询"],
    "statuses": [{"key": "warehouse", "label": "待仓库核实", "buyer_label": "仓库核实中",
                  "maps_to": "on_hold"}]}
DEMO_OUTREACH = {"quiet_start": "00:00", "quiet_end": "00:00"}  # no quiet hours
DEMO_SEGMENT = "demo-buyers"
DEMO_CAMPAIGN: dict[str, Any] = {
    "name": "双12 老客专享", "rate": 5,
    "message": {"text": "双12 老客专享：羽绒服满300减50，回复 TD 退订",
                "text_en": "For our returning buyers: 50 off 300 on down jackets. Reply TD "
                           "to opt out",
                "coupon": {"title": "满300减50", "amount": 50, "threshold": 300},
                "product": {"product": "sku-1001", "title": "轻薄羽绒服 男款", "price": 399},
                "link": {"url": "https://example.com/uniqlo-style/sale", "title": "去会场"}}}
DEMO_CONTACTS = {"buyer-1": {"phone": "+8613800000001", "email": "xiaowang@example.com"}}
DEMO_RULES = (
    {"name": "退款退货", "conditions": {"keywords": ["退款", "退货", "换货"]},
     "group": "after_sales"},
    {"name": "物流", "conditions": {"keywords": ["快递", "物流", "没收到"]},
     "group": "logistics", "assignee": "agent-2"},
)



def demo_settings(config_file: Path | None, flags: dict[str, Any]) -> Settings:
    """Settings for the demo: generated credentials unless the environment sets them."""
    env = dict(os.environ)
    env.setdefault("OCTIM_SECRET", secrets.token_urlsafe(48))
    env.setdefault("OCTIM_API_KEY", "demo-" + secrets.token_urlsafe(24))
    env.setdefault("OCTIM_LOG_FORMAT", "text")
    # The demo's WeChat adapter listens on loopback; replies may go there (only here).
    env.setdefault("OCTIM_WEBHOOK_ALLOW", "127.0.0.1")
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
    for shop_id, name, categories in DEMO_SHOPS:
        # The first shop has no quiet hours, so its demo campaign goes out at any hour.
        settings = {"outreach": DEMO_OUTREACH} if shop_id == DEMO_SHOPS[0][0] else {}
        await directory.ref(SHOP, shop_id).ask(UpsertShop(shop_id, name, settings,
                                                          categories))
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
    # What the bot learns from traffic (docs/bot.md): a buyer who tapped 怎么选尺码 among
    # the bot's choices after asking in their own words (the message the bot sends), and
    # the shop's own words for its trade.
    sizes = next(e["id"] for e in DEMO_KB if e["shop"] == shop and e["question"] == "怎么选尺码")
    await kb.ask(Propose(shop, "身高170该拍哪个码", sizes, None, "click"))
    await kb.ask(PutSynonyms(shop, {"羽绒衣": "羽绒服", "出库": "发货"}))
    now = engine.context.now_ms()
    for canned_shop, reply_id, title, text in DEMO_CANNED:
        await canned.put(engine.store, reply_id, shop=canned_shop, user="", title=title,
                         text=text, now_ms=now)
    for buyer, nickname, level, region, orders in DEMO_BUYERS:
        await engine.upsert_customer(buyer, nickname=nickname, level=level, region=region,
                                     attributes={"sizes": {"top": "L", "shoes": 42},
                                                 "marketing_consent": buyer == "buyer-3"},
                                     **DEMO_CONTACTS.get(buyer, {}))
        for order, order_shop, status, name, price, age in orders:
            await engine.upsert_order(
                order, shop=order_shop, customer=buyer, status=status,
                items=[{"sku": f"sku-{order}", "name": name, "price": price}],
                times={"created": now - age * DAY_MS})
    for order in ("demo-o1", "demo-o5"):
        owner = "buyer-1" if order == "demo-o1" else "buyer-2"
        await directory.ref(CUSTOMER, owner).ask(AddLogistics(order, (
            {"time": now - DAY_MS, "place": "杭州", "status": "已揽收"},
            {"time": now - 3_600_000, "place": "上海转运中心", "status": "运输中"})))
    for client_id, user, role, text in (
            ("demo-1", "buyer-1", "buyer", "你好，这件羽绒服有L码吗？"),
            ("demo-2", "agent-1", "agent", "亲，L码有货的，今天下单明天发货哦～")):
        ack = await ref.ask(SendMessage(conversation, user, role, (shop,), client_id, "text",
                                        {"text": text}, ""))
        await ack.wait()
    # buyer-3 has the down jacket in the cart at ¥399 (a price drop reminds them).
    await reminders.put_interests(engine, "buyer-3", [
        {"shop": shop, "sku": "sku-1001", "kind": "cart", "price": 399}])
    # The platform says demo-o1 shipped: a service notice joins that chat (once).
    await engine.order_events([{"order": "demo-o1", "shop": shop, "customer": "buyer-1",
                                "event": "shipped", "carrier": "中通",
                                "waybill": "ZT75310042", "id": "demo-shipped-1"}])
    # The buyer's complaint becomes a ticket (工单) with an internal note, once.
    desk = directory.ref(TICKETS, shop)
    made = await desk.ask(CreateTicket(
        {"subject": "羽绒服L码发货咨询", "category": "物流问题", "priority": "high",
         "order": "demo-o1", "assignee": "agent-1",
         "source": {"kind": "chat", "conversation": conversation, "seq_from": 1},
         "requester": "buyer-1"}, "agent-1", "agent", "demo\x1fdemo-ticket-1"))
    if not made["repeated"]:
        await desk.ask(CommentTicket(made["id"], "已联系仓库确认库存", False, "agent-1", "agent"))
    await desk.ask(PutBusinessHours(DEMO_HOURS))
    await desk.ask(PutPolicy("standard", DEMO_POLICY))
    await desk.ask(PutSettings(DEMO_TICKET_SETTINGS))
    await desk.ask(PutRules(DEMO_RULES))
    # An email to the shop opens a ticket that the refund rule gives to after-sales (a
    # redelivery on the next start changes nothing). buyer-1 can be called (来电弹屏).
    await desk.ask(InboundEmail("<demo-mail-1@example.com>", (), "email:azhen@example.com",
                                "退款还没到账", "快递退回去一周了，退款还没到账，订单 demo-o4。",
                                None))
    await _history(engine)
    await seed_campaign(engine, shop)
    return str(conversation)


async def seed_campaign(engine: Engine, shop: str) -> None:
    """The shop's buyers with an order there, and a campaign to them (once): buyer-3 has
    marketing consent and gets it; buyer-1 has none and is held back (docs/outreach.md)."""
    await engine.store.put("segments", DEMO_SEGMENT.encode(), {
        "id": DEMO_SEGMENT, "name": "下过单的买家", "shop": shop, "shared": False,
        "rule": {"tags_any": [], "level_at_least": 0, "min_orders": 1, "min_spent": 0,
                 "min_returns": 0, "stages_any": []}})
    if not any(c["name"] == DEMO_CAMPAIGN["name"] for c in engine.campaigns.of_shop(shop)):
        await engine.create_campaign(shop, segment=DEMO_SEGMENT, **DEMO_CAMPAIGN)


async def _history(engine: Engine) -> None:
    """A month of made-up conversations in the event log (once), so the reports page
    (/reports) has a month to show; their ids start with ``syn-``."""
    if engine.store.get("meta", DEMO_HISTORY_KEY) is not None:
        return
    today = engine.context.now_ms() // DAY_MS * DAY_MS
    agents = {shop: [a for a, _, shops, _ in DEMO_AGENTS if shop in shops]
              for shop, _, _ in DEMO_SHOPS}
    shops = [s for s, _, _ in DEMO_SHOPS]
    kb = {shop: [e["id"] for e in DEMO_KB if e["shop"] in (None, shop)] for shop in shops}
    records = synthetic.conversations(shops, agents, today - 30 * DAY_MS, 30, 40, kb=kb)
    await synthetic.load(engine.store, records)
    # The year before: older buyers' payments, for the lifecycle's active, at risk, lost.
    await synthetic.load(engine.store, synthetic.past_orders(shops, today - 30 * DAY_MS, 300))
    await engine.store.write((Put("meta", DEMO_HISTORY_KEY, pack(True)),))


DEMO_WECHAT = "uniqlo-wechat"  # the first shop's WeChat Official Account (a fake one)
DEMO_OPENID = "demo-openid-buyer-1"  # buyer-1 on it


async def seed_wechat(engine: Engine, listening: Listening, conversation: str
                      ) -> dict[str, str]:
    """The first shop's WeChat channel, with the WeChat adapter and a FAKE WeChat running
    in this process (WeChat's servers are not reachable from a demo): buyer-1 is linked to
    an openid there, writes from WeChat into the same conversation, and agent-1's answer
    goes back to the fake WeChat. Returns the URLs to try it with."""
    import httpx
    import trio

    from octim.channels.wechat import WeChatConfig, serve
    from octim.channels.wechat_fake import FakeWeChat
    from octim.config import HostPort

    fake = FakeWeChat().start()
    before = engine.store.get("channels", DEMO_WECHAT.encode())
    secret = str(before["secret"]) if before else secrets.token_urlsafe(32)
    config = WeChatConfig(token=fake.token, appid=fake.appid, appsecret=fake.appsecret,
                          octim=listening.http_url, channel=DEMO_WECHAT, channel_secret=secret,
                          api_base=fake.url)
    bound: list[HostPort] = []
    ready = trio.Event()

    async def adapter() -> None:  # until the process ends
        async with trio.open_nursery() as nursery:
            bound.append(await nursery.start(serve, config, HostPort("127.0.0.1", 0)))
            ready.set()

    trio.lowlevel.spawn_system_task(adapter)
    await ready.wait()
    adapter_url = f"http://127.0.0.1:{bound[0].port}"
    fake.adapter_url = f"{adapter_url}/wechat"
    shop = DEMO_SHOPS[0][0]
    async with httpx.AsyncClient(base_url=listening.http_url, timeout=10, headers={
            "Authorization": f"Bearer {engine.settings.api_key}"}) as http:
        (await http.put(f"/api/channels/{DEMO_WECHAT}", json={
            "shop": shop, "type": "api", "platform": "wechat", "name": "优衣坊微信公众号",
            "secret": secret, "kinds": ["text", "link"], "convert": True,
            "outbound_url": f"{adapter_url}/outbound",
            "product_url": "https://shop.example.com/item/{product}"})).raise_for_status()
        (await http.put("/api/customers/buyer-1/identities", json={"identities": [
            {"type": "channel", "channel": DEMO_WECHAT, "value": DEMO_OPENID}]})
         ).raise_for_status()
    pushed = await trio.to_thread.run_sync(lambda: fake.push(
        fake.adapter_url, DEMO_OPENID, Content="我在微信上，羽绒服今天能发吗？", msg_id=1))
    if pushed.text == "success":  # agent-1 answers; the reply goes out to WeChat
        ack = await engine.directory.ref(CONVERSATION, conversation).ask(SendMessage(
            conversation, "agent-1", "agent", (shop,), "demo-3", "text",
            {"text": "亲，今天下午就发出，微信上也能随时找我们～"}, ""))
        await ack.wait()
    return {"fake": fake.url, "adapter": adapter_url}


def demo_links(settings: Settings, listening: Listening, conversation: str,
               wechat: dict[str, str] | None = None) -> str:
    """The text the demo prints once it is ready."""
    def jwt(user: str, role: str, *shops: str) -> str:
        return issue_token(settings.secret, user, role, shops=shops, ttl=86400)

    http = listening.http_url
    buyer = jwt("buyer-1", "buyer")
    agent = jwt("agent-1", "agent", *DEMO_AGENTS[0][2])
    shop = DEMO_SHOPS[0][0]
    lines = [
        "",
        "OctIM demo is running. Press Ctrl+C to stop.",
        f"  data dir     {settings.data.resolve()}",
        f"  HTTP API     {http}   (OpenAPI: {http}/docs)",
        f"  WebSocket    {listening.ws_url}   (subprotocol octim.v1.json or octim.v1.msgpack)",
        f"  API key      {settings.api_key}",
        f"  buyer token  {buyer}",
        f"  agent token  {agent}",
        "",
        f"  conversation  {conversation}   (buyer-1 with {shop}, assigned to agent-1)",
        f"  tickets       GET {http}/api/tickets?shop={shop}   (with the API key: T-1, "
        "opened from that chat; T-2, opened by an email; docs/tickets.md)",
        "",
        "Open in a browser (each link signs in as that person):",
    ]
    for agent_id, name, shops, _ in DEMO_AGENTS:
        lines.append(f"  workbench {agent_id}  {http}/agent#token={jwt(agent_id, 'agent', *shops)}"
                     f"   ({name}: {', '.join(shops)})")
    for buyer_id, _, _, _, orders in DEMO_BUYERS:
        order, order_shop, _, item, price, _ = orders[-1]
        query = urlencode({"shop": order_shop, "product": f"sku-{order}", "title": item,
                           "price": price})
        lines.append(f"  widget {buyer_id}  {http}/chat?{query}#token={jwt(buyer_id, 'buyer')}")
    lines += [
        f"  monitor platform  {http}/monitor#token={jwt('ops', 'platform_admin')}",
        f"  monitor {shop}  {http}/monitor#token={jwt('admin-' + shop, 'shop_admin', shop)}",
        f"  reports {shop}  {http}/reports#token={jwt('admin-' + shop, 'shop_admin', shop)}"
        "   (a month of demo history)",
        f"  reports platform  {http}/reports#token={jwt('ops', 'platform_admin')}",
        f"  campaigns {shop}  {http}/campaigns#token={jwt('admin-' + shop, 'shop_admin', shop)}"
        "   (the demo campaign's results; create one and preview its audience)",
        f"  knowledge base {shop}  {http}/kb#token={jwt('admin-' + shop, 'shop_admin', shop)}"
        "   (a proposal learned from a buyer's tap to approve; try the bot; synonyms)",
        f"  admin console {shop}  {http}/admin#token={jwt('admin-' + shop, 'shop_admin', shop)}"
        "   (team, routing rules and the routing simulator, bot and hours, knowledge base "
        "import and export, canned replies)",
        f"  admin console platform  {http}/admin?shop={shop}#token={jwt('ops', 'platform_admin')}"
        "   (also peak mode and the audit log)",
        f"  storefront embed  <script src=\"{http}/widget.js\" data-shop=\"{shop}\" "
        f"data-token=\"{buyer}\"></script>",
        "",
        "Try:",
        f"  curl {http}/readyz",
        f"  curl -H 'Authorization: Bearer {settings.api_key}' {http}/api/shops/{shop}",
        f"  connect to {listening.ws_url}, send {{\"type\":\"hello\",\"token\":<buyer token>}},",
        f"  then {{\"type\":\"sync\",\"conversation\":\"{conversation}\"}} "
        "(protocol: docs/protocol.md)",
        "  as a buyer, open a shop whose agents are offline and ask 几天能发货: the bot "
        "answers; say 转人工 to be handed to a person",
        f"  knowledge-base visibility: POST {http}/api/kb/ask {{\"question\":\"退货寄到哪\","
        f"\"shop\":\"{shop}\"}} with the agent token finds the internal entry, with the "
        "buyer token it does not",
        "  security: docs/security.md (TLS with --tls-cert/--tls-key, encryption at rest "
        "with OCTIM_DATA_KEY, octim rekey)",
        "  tickets: the workbench's 工单 tab is the queue (SLA countdowns, breached first); "
        f"{shop} has business hours, an SLA, custom fields and statuses, assignment rules",
        f"  a phone call pops up buyer-1 in agent-1's workbench (来电弹屏): curl -X POST "
        f"-H 'Authorization: Bearer {settings.api_key}' -H 'Content-Type: application/json' "
        f"-d '{{\"shop\":\"{shop}\",\"call\":\"c-1\",\"phone\":\"+8613800000001\","
        f"\"agent\":\"agent-1\"}}' {http}/api/inbound/call",
        "  an email opens or joins a ticket: POST a raw message to "
        f"{http}/api/inbound/email?shop={shop}; with OCTIM_SMTP and OCTIM_SMTP_FROM set, "
        "public replies go out by email",
    ]
    lines += [
        f"  notices: demo-o1's shipping notice is in that chat; send another: curl -X POST "
        f"-H 'Authorization: Bearer {settings.api_key}' -H 'Content-Type: application/json' "
        f"-d '{{\"events\":[{{\"order\":\"demo-o1\",\"shop\":\"{shop}\","
        f"\"customer\":\"buyer-1\",\"event\":\"delivered\"}}]}}' {http}/api/events/orders"
        "   (docs/outreach.md)",
        "  reminders: buyer-3 carted sku-1001 at ¥399; a price drop reminds them (marketing: "
        "the answer says why not, e.g. quiet_hours at night): curl -X POST "
        f"-H 'Authorization: Bearer {settings.api_key}' -H 'Content-Type: application/json' "
        f"-d '{{\"changes\":[{{\"shop\":\"{shop}\",\"sku\":\"sku-1001\","
        f"\"title\":\"轻薄羽绒服 男款\",\"price\":349}}]}}' {http}/api/events/price-change",
        f"  campaigns: '{DEMO_CAMPAIGN['name']}' went to the segment {DEMO_SEGMENT} (buyers "
        f"with an order at {shop}): buyer-3 got it in the chat (widget buyer-3 above, with "
        "a coupon, a tracked link and 退订); buyer-1 has no marketing consent and was held "
        f"back. Results: curl -H 'Authorization: Bearer {settings.api_key}' "
        f"'{http}/api/campaigns?shop={shop}'; figures in the reports (主动消息)",
        f"  peak mode (大促): new conversations start with the bot, agents take twice as many, "
        f"and past 20 waiting buyers leaving a message is offered; the monitor marks the "
        f"shop: curl -X PUT -H 'Authorization: Bearer {settings.api_key}' "
        f"-H 'Content-Type: application/json' -d '{{\"on\":true,\"capacity_factor\":2,"
        f"\"queue_cap\":20}}' {http}/api/shops/{shop}/peak   (admission control and "
        f"GET {http}/metrics: docs/operations.md)",
    ]
    if wechat:
        lines += [
            f"  channels: buyer-1 also writes from {shop}'s WeChat account (a FAKE WeChat in "
            "this process, docs/channels.md); the same conversation holds both, each "
            "message marked by its channel, and agent-1's replies go where buyer-1 last wrote",
            f"    write as buyer-1 on WeChat  curl -G {wechat['fake']}/fake/push "
            f"--data-urlencode openid={DEMO_OPENID} --data-urlencode 'text=还在吗？'",
            f"    what WeChat delivered  curl -G {wechat['fake']}/fake/inbox "
            f"--data-urlencode openid={DEMO_OPENID}",
            f"    the channel  curl -H 'Authorization: Bearer {settings.api_key}' "
            f"{http}/api/channels?shop={shop}",
        ]
    lines.append("")
    return "\n".join(lines)
